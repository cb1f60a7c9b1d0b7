"""Per-turn success of an editor on synthetic chains, checked by the verifiable judge (score 5).

Two ways to run a chain of T instructions (Euler, one sample per chain, seeded):

* multi-turn: `rollout_chains`, turn k edits the editor's OWN turn k - 1 output; ``marginal[k]``
  is the fraction of chains whose turn k succeeds, ``cumulative[k]`` of those whose turns 1..k
  all succeed (MT-EditFlow Table 7's two views);
* clean: every turn edits its ground-truth input (`edit_rl.synthetic.turn_pairs`), i.e. single
  turns; ``clean[k]`` per turn, ``clean_by_type`` per edit kind over all turns.

The gap between ``clean`` and ``marginal`` at turns >= 2 is the exposure bias.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from edit_rl.config.schema import SamplerConfig
from edit_rl.data.chain import EditChain
from edit_rl.editors.base import Editor
from edit_rl.editors.images import uint8_images
from edit_rl.editors.rollout import rollout_chains
from edit_rl.judge.judge import JudgeRequest
from edit_rl.synthetic.judge import SyntheticJudge
from edit_rl.synthetic.turn_pairs import turn_pairs
from edit_rl.synthetic.world import Geometry

SUCCESS_SCORE = 5.0


@dataclass(frozen=True)
class EditorEval:
    """Success fractions in [0, 1] (see the module docstring)."""

    num_chains: int
    num_steps: int
    marginal: tuple[float, ...]
    cumulative: tuple[float, ...]
    clean: tuple[float, ...]
    clean_by_type: dict[str, float]

    @property
    def single_turn(self) -> float:
        """Clean success over all turns (every turn weighs the same)."""
        return float(np.mean(self.clean))

    def to_dict(self) -> dict:
        return {**asdict(self), "single_turn": self.single_turn}


def _rollout_success(editor: Editor, inputs: Tensor, instructions: Sequence[Sequence[str]],
                     sampler: SamplerConfig, generator: torch.Generator, judge: SyntheticJudge) -> np.ndarray:
    """(C, T) bool: the judge's verdict on each turn of each chain, rolled out on its own outputs."""
    rollout = rollout_chains(editor, inputs, instructions, 1, sampler, generator, evaluation=True)
    references = uint8_images(inputs)
    outputs = [uint8_images(turn.images) for turn in rollout.turns]
    requests = [JudgeRequest(reference=references[c], edited=tuple(out[c] for out in outputs),
                             instructions=tuple(instructions[c])) for c in range(len(instructions))]
    return np.array([[s.value == SUCCESS_SCORE for s in result.turns] for result in judge.score(requests)])


def evaluate_editor(editor: Editor, chains: Sequence[EditChain], num_steps: int = 8, seed: int = 0,
                    batch_size: int = 64) -> EditorEval:
    """Multi-turn and clean per-turn success of ``editor`` on ``chains`` (all with the same number of turns)."""
    num_turns = {c.num_turns for c in chains}
    if len(num_turns) != 1:
        raise ValueError(f"chains must all have the same number of turns, got {sorted(num_turns)}")
    turns = num_turns.pop()
    sampler = SamplerConfig(method="euler", num_steps=num_steps, eval_method="euler", eval_num_steps=num_steps)
    generator = torch.Generator().manual_seed(seed)
    judge = SyntheticJudge()
    pairs = turn_pairs(chains, Geometry(editor.resolution))
    inputs = pairs.inputs.float() / 255

    chain_rows = []
    for start in range(0, len(chains), batch_size):
        batch = chains[start:start + batch_size]
        first = inputs[[(start + c) * turns for c in range(len(batch))]]
        chain_rows.append(_rollout_success(editor, first, [c.instructions for c in batch], sampler, generator, judge))
    multi = np.concatenate(chain_rows)  # (C, T)

    clean_rows = []
    for start in range(0, len(pairs), batch_size):
        stop = min(start + batch_size, len(pairs))
        single = [[pairs.instructions[i]] for i in range(start, stop)]
        clean_rows.append(_rollout_success(editor, inputs[start:stop], single, sampler, generator, judge)[:, 0])
    clean = np.concatenate(clean_rows).reshape(len(chains), turns)

    by_type: dict[str, list[bool]] = defaultdict(list)
    for task_type, ok in zip(pairs.task_types, clean.reshape(-1)):
        by_type[task_type].append(bool(ok))
    return EditorEval(
        num_chains=len(chains), num_steps=num_steps,
        marginal=tuple(float(v) for v in multi.mean(axis=0)),
        cumulative=tuple(float(v) for v in np.cumprod(multi, axis=1).mean(axis=0)),
        clean=tuple(float(v) for v in clean.mean(axis=0)),
        clean_by_type={k: float(np.mean(v)) for k, v in sorted(by_type.items())},
    )
