"""How an editor's additions and moves fail: which part of the edit goes wrong.

    python -m experiments.shapes.placement_errors [--model checkpoints/shapes-base] [--kinds subject_add,position_change]
        [--chains 400] [--turns 256] [--steps 8] [--seed 0] [--json OUT]

Why: the shipped base almost never adds or moves an object (checkpoints/shapes-base/report.md), and
most held-out chains have such a turn, so these two kinds bound what RL on that base can gain at
turn 3. This edits held-out single turns of the chosen kinds on their ground-truth inputs (the
first ``--turns`` of ``--chains`` held-out chains; Euler, one seeded draw each) and takes each
output apart with the world's own parser (:func:`attempt_anatomy`):

* ``success``: rubric score 5;
* ``attempted``: some object of the instructed colour that the input did not hold as it is
  (an added object, or the moved one in a new place);
* ``beside_anchor``: one of those in a cell next to the anchor's (above, below, left or right of
  it: the four cells the four relations name, the destination among them);
* ``right_cell`` / ``right_object``: one of those in the destination cell / also of the right
  shape and size;
* ``clean``: at most the rubric's junk tolerance in stray or broken pixels;
* ``colour_cells``: in how many cells new pixels of the instructed colour appear (objects not in
  the input, or junk; a moved object left whole in its source cell is the input's and does not
  count). One is a decision; two or more is an editor spreading its bet over several places.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from edit_rl.config.schema import SamplerConfig
from edit_rl.editors.images import uint8_images
from edit_rl.editors.load import load_editor
from edit_rl.editors.rollout import rollout_chains
from edit_rl.synthetic.edits import Add, Move, apply_edit, find_one, neighbour
from edit_rl.synthetic.grammar import parse_instruction
from edit_rl.synthetic.parse import parse_image
from edit_rl.synthetic.rubric import JUNK_TOLERANCE_PIXELS, score_turn
from edit_rl.synthetic.splits import make_split
from edit_rl.synthetic.turn_pairs import turn_pairs
from edit_rl.synthetic.world import RELATIONS
from experiments.shapes.pretrain_editor import editor_config

KINDS = ("subject_add", "position_change")


@dataclass(frozen=True)
class Attempt:
    """One add or move turn, taken apart (see the module docstring)."""

    kind: str
    score: int
    attempted: bool
    beside_anchor: bool
    right_cell: bool
    right_object: bool
    clean: bool
    colour_cells: int


def attempt_anatomy(before: np.ndarray, output: np.ndarray, instruction: str) -> Attempt:
    """Parse the input and output images (uint8 (H, W, 3)) and compare with the instruction's edit,
    applied to the parsed input."""
    edit = parse_instruction(instruction)
    if not isinstance(edit, (Add, Move)):
        raise ValueError(f"not an add or move instruction: {instruction!r}")
    parsed_before, parsed_output = parse_image(before), parse_image(output)
    source = parsed_before.scene
    expected = [o for o in apply_edit(source, edit).objects if o not in source.objects][0]
    colour = expected.desc.color
    fresh = [o for o in parsed_output.scene.objects if o not in source.objects and o.desc.color == colour]
    anchor = find_one(source, edit.anchor).cell
    beside = {neighbour(anchor, relation) for relation in RELATIONS}
    junk_cells = {b.cell for b in parsed_output.junk if b.color == colour}
    return Attempt(kind=edit.task_type, score=score_turn(parsed_before, parsed_output, edit).score,
                   attempted=bool(fresh), beside_anchor=any(o.cell in beside for o in fresh),
                   right_cell=any(o.cell == expected.cell for o in fresh),
                   right_object=expected in fresh, clean=parsed_output.junk_pixels <= JUNK_TOLERANCE_PIXELS,
                   colour_cells=len({o.cell for o in fresh} | junk_cells))


@dataclass(frozen=True)
class KindSummary:
    """Counts over one kind's turns (rates are of all turns, except the last three)."""

    kind: str
    turns: int
    success: float
    attempted: float
    beside_anchor_of_attempted: float
    right_cell_of_attempted: float
    right_object_of_attempted: float
    clean: float
    colour_cells_of_attempted: float  # mean


def summarize(attempts: Sequence[Attempt]) -> list[KindSummary]:
    rows = []
    for kind in sorted({a.kind for a in attempts}):
        group = [a for a in attempts if a.kind == kind]
        tried = [a for a in group if a.attempted]

        def rate(values: Sequence[bool]) -> float:
            return float(np.mean(values)) if values else float("nan")
        rows.append(KindSummary(kind, len(group), rate([a.score == 5 for a in group]), rate([a.attempted for a in group]),
                                rate([a.beside_anchor for a in tried]), rate([a.right_cell for a in tried]), rate([a.right_object for a in tried]),
                                rate([a.clean for a in group]),
                                float(np.mean([a.colour_cells for a in tried])) if tried else float("nan")))
    return rows


def table(rows: Sequence[KindSummary]) -> str:
    lines = ["| kind | turns | success % | attempted % | beside the anchor, % of attempted | right cell, % of attempted "
             "| right object, % of attempted | clean % | cells with the new colour, mean over attempted |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.kind} | {r.turns} | {100 * r.success:.1f} | {100 * r.attempted:.1f} | "
              f"{100 * r.beside_anchor_of_attempted:.1f} | {100 * r.right_cell_of_attempted:.1f} | {100 * r.right_object_of_attempted:.1f} | {100 * r.clean:.1f} | "
              f"{r.colour_cells_of_attempted:.2f} |" for r in rows]
    return "\n".join(lines)


def edit_turns(model: str, chains: int, turns: int, kinds: Sequence[str], steps: int, seed: int,
               batch_size: int = 64) -> list[Attempt]:
    """Edit the first ``turns`` held-out single turns of ``kinds`` and take each output apart."""
    pairs = turn_pairs(make_split("heldout", chains))
    index = [i for i, kind in enumerate(pairs.task_types) if kind in kinds][:turns]
    if not index:
        raise ValueError(f"no turn of kinds {list(kinds)} in {chains} held-out chains")
    editor = load_editor(editor_config(model))
    sampler = SamplerConfig(method="euler", num_steps=steps, eval_method="euler", eval_num_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    attempts = []
    for start in range(0, len(index), batch_size):
        inputs, _, prompts = pairs.batch(torch.tensor(index[start:start + batch_size]))
        rollout = rollout_chains(editor, inputs, [[p] for p in prompts], 1, sampler, generator, evaluation=True)
        outputs = uint8_images(rollout.turns[0].images)
        attempts += [attempt_anatomy(before, out, p) for before, out, p in zip(uint8_images(inputs), outputs, prompts)]
    return attempts


def main(argv: Optional[Sequence[str]] = None) -> list[KindSummary]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="checkpoints/shapes-base", help="a shapes editor folder (or registered name)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: subject_add, position_change")
    parser.add_argument("--chains", type=int, default=400, help="held-out chains to draw the turns from")
    parser.add_argument("--turns", type=int, default=256, help="at most this many turns")
    parser.add_argument("--steps", type=int, default=8, help="Euler steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        parser.error(f"--kinds takes {', '.join(KINDS)}; got {args.kinds!r}")
    torch.set_num_threads(args.threads)
    rows = summarize(edit_turns(args.model, args.chains, args.turns, kinds, args.steps, args.seed))
    print(f"{args.model}: held-out single turns on ground-truth inputs, Euler {args.steps} steps, seed {args.seed}")
    print(table(rows), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
