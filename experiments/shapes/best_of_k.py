"""Sharpening headroom: how far could RL get by always picking what the editor already samples?

    python -m experiments.shapes.best_of_k [--config experiments/shapes/configs/shapes_nft.yaml] [--lora RUN/checkpoints/step_N/lora]
        [--chains 600] [--k 1,4,16] [--seed 1234] [--json OUT] [key=value ...]

Why: NFT and GRPO learn from groups of k rollouts of one chain, raising what scored above the group
and lowering what scored below. An editor that, at every turn, produced a success whenever any of k
draws of the current editor would have, is what perfect sharpening toward the editor's own
successes reaches. This measures it on the shapes world's held-out chains (the evaluation's, from
``evaluation.synthetic_chains`` and ``data``), in one process with no Ray:

For each k, every chain is edited turn by turn; at turn t the editor draws k samples from the
current image (Euler, the evaluation sampler, seeded by ``--seed``), the verifiable judge scores
each (success = score 5), and the chain continues from the first successful sample, or from the
first sample if none succeeded (:func:`pick_first_success`). Per turn it reports

* ``pass@1``: the mean success of the k draws (the editor's own rate on the path's images),
* ``pass@k``: the fraction of chains with at least one successful draw,
* ``mixed``: the fraction with some but not all draws successful (the groups whose binary
  group-relative advantages are not all zero: what a group of k can learn from),
* EdiVal-IF, CC and Overall of the chosen path, computed by the evaluation's own code
  (``summarize_mode`` on the path's `TurnRecord`s, CC by EdiVal-CC with the reference pairing).

k = 1 is the plain multi-turn evaluation (tested to equal `evaluate_editor`'s for the same seed).
The difference between the k-path's turn-3 Overall and k = 1's is the sharpening headroom with
groups of k: a policy that only re-weights its own k draws toward successes gains at most about
that much (RL may also learn edits the editor never samples; on this base it has not).

Cost: (1 + sum of the k's) x chains x 3 turns edits.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from edit_rl.config import Config
from edit_rl.data.chain import EditChain
from edit_rl.editors.base import Editor

DEFAULT_CONFIG = Path("experiments/shapes/configs/shapes_nft.yaml")
SUCCESS_SCORE = 5.0


def pick_first_success(successes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, k) bool -> (index of the draw each chain continues from: its first success, else 0;
    whether any draw succeeded)."""
    successes = np.asarray(successes, dtype=bool)
    any_success = successes.any(axis=1)
    return np.where(any_success, successes.argmax(axis=1), 0), any_success


@dataclass(frozen=True)
class TurnHeadroom:
    """One turn of one k; percentages."""

    turn: int
    pass_at_1: float
    pass_at_k: float
    mixed: float
    edival_if: float
    cc: Optional[float]
    overall: Optional[float]


@dataclass(frozen=True)
class Headroom:
    k: int
    num_chains: int
    turns: tuple[TurnHeadroom, ...]
    seconds: float


def best_of_k_path(editor: Editor, chains: Sequence[EditChain], inputs: Tensor, k: int, seed: int,
                   num_steps: int, batch_size: int = 64) -> Headroom:
    """The best-of-k path of every chain (module docstring). ``inputs``: (C, 3, H, W) in [0, 1], the
    chains' input images. Noise comes from one generator seeded with ``seed``, drawn batch by batch
    and turn by turn as `rollout_chains` draws it (so k = 1 repeats `evaluate_editor`'s multi-turn)."""
    from edit_rl.config.schema import SamplerConfig
    from edit_rl.consistency import Chain
    from edit_rl.data import turn_specs
    from edit_rl.editors.images import uint8_images
    from edit_rl.editors.rollout import rollout_chains
    from edit_rl.evaluation import TurnRecord, turn_succeeded
    from edit_rl.evaluation.summary import summarize_mode
    from edit_rl.judge.judge import JudgeRequest
    from edit_rl.synthetic.cc import synthetic_cc
    from edit_rl.synthetic.judge import SyntheticJudge

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    judge, cc = SyntheticJudge(), synthetic_cc()
    sampler = SamplerConfig(method="euler", num_steps=num_steps, eval_method="euler", eval_num_steps=num_steps)
    generator = torch.Generator().manual_seed(seed)
    start_time = time.monotonic()
    records, pass1, passk, mixed = [], [], [], []
    for start in range(0, len(chains), batch_size):
        batch = chains[start:start + batch_size]
        current = inputs[start:start + len(batch)].float()
        path = [current]
        scores, rates = [], []
        for t in range(batch[0].num_turns):
            instructions = [[c.instructions[t]] for c in batch]
            drawn = rollout_chains(editor, current, instructions, k, sampler, generator,
                                   evaluation=True).turns[0].images.view(len(batch), k, *current.shape[1:])
            previous = uint8_images(current)
            requests = [JudgeRequest(reference=previous[c], edited=(image,), instructions=(instructions[c][0],))
                        for c in range(len(batch)) for image in uint8_images(drawn[c])]
            values = np.array([r.turns[0].value for r in judge.score(requests)]).reshape(len(batch), k)
            chosen, _ = pick_first_success(values == SUCCESS_SCORE)
            current = drawn[torch.arange(len(batch)), torch.as_tensor(chosen)]
            path.append(current)
            scores.append(values[np.arange(len(batch)), chosen])
            successes = (values == SUCCESS_SCORE).sum(axis=1)
            rates.append((successes / k, successes > 0, (successes > 0) & (successes < k)))
        images = [uint8_images(p) for p in path]
        cc_chains = [Chain([images[t][c] for t in range(len(images))], turn_specs(chain.turns, "reference"))
                     for c, chain in enumerate(batch)]
        for c, (chain, pairs) in enumerate(zip(batch, cc.score_chains(cc_chains, "reference"))):
            for t, pair in enumerate(pairs):
                measured = pair.object_score is not None or pair.background_score is not None
                records.append(TurnRecord(
                    mode="multi_turn", chain_id=chain.chain_id, turn=t + 1, task_type=chain.turns[t].task_type,
                    instruction=chain.turns[t].instruction, judge_score=float(scores[t][c]), judge_fallback=False,
                    success=turn_succeeded(float(scores[t][c]), SUCCESS_SCORE), cc=pair.cc if measured else None,
                    cc_object=pair.object_score, cc_background=pair.background_score,
                    cc_counted=bool(pair.check_background)))
        pass1.append(np.stack([r[0] for r in rates], axis=1))
        passk.append(np.stack([r[1] for r in rates], axis=1))
        mixed.append(np.stack([r[2] for r in rates], axis=1))
    summary = summarize_mode("multi_turn", records)
    p1, pk, mx = (100.0 * np.concatenate(a).mean(axis=0) for a in (pass1, passk, mixed))
    turns = tuple(TurnHeadroom(turn=m.turn, pass_at_1=float(p1[i]), pass_at_k=float(pk[i]), mixed=float(mx[i]),
                               edival_if=m.edival_if, cc=m.cc, overall=m.overall)
                  for i, m in enumerate(summary.turns))
    return Headroom(k=k, num_chains=len(chains), turns=turns, seconds=time.monotonic() - start_time)


def load_editor_with_lora(cfg: Config, lora: Optional[Path]) -> Editor:
    """The config's editor in evaluation mode, with a training checkpoint's LoRA applied if given."""
    from edit_rl.editors.load import load_editor

    editor = load_editor(cfg.editor)
    if lora is not None:
        from edit_rl.editors.lora import add_lora, load_adapter_state_dict_, read_lora_weights
        from edit_rl.editors.lora_targets import lora_config_for

        weights = read_lora_weights(lora)
        add_lora(editor.transformer, lora_config_for(editor, weights.config(cfg.lora)), with_old=False)
        load_adapter_state_dict_(editor.transformer, weights.state)
    editor.transformer.requires_grad_(False).eval()
    return editor


def table(results: Sequence[Headroom]) -> str:
    """Markdown: one row per (k, turn)."""
    def num(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.1f}"

    lines = ["| k | turn | pass@1 | pass@k | mixed groups | EdiVal-IF | CC | Overall |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines += [f"| {r.k} | {t.turn} | {num(t.pass_at_1)} | {num(t.pass_at_k)} | {num(t.mixed)} | {num(t.edival_if)} "
                  f"| {num(t.cc)} | {num(t.overall)} |" for t in r.turns]
    return "\n".join(lines)


def parse_ks(text: str) -> list[int]:
    ks = [int(v) for v in text.split(",") if v.strip()]
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k takes positive integers separated by commas, got {text!r}")
    return ks


def main(argv: Optional[Sequence[str]] = None) -> list[Headroom]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--lora", type=Path, default=None, help="a training checkpoint's lora/ folder")
    parser.add_argument("--chains", type=int, default=600, help="held-out chains (evaluation.synthetic_chains)")
    parser.add_argument("--k", type=parse_ks, default=[1, 4, 16], help="draws per turn, e.g. 1,4,16")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args(argv)

    from edit_rl.config import load_config
    from edit_rl.synthetic.splits import heldout_split
    from edit_rl.synthetic.turn_pairs import turn_pairs
    from edit_rl.synthetic.world import Geometry

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    if cfg.data.source != "synthetic" or cfg.editor.family != "shapes_kontext":
        raise SystemExit("best_of_k runs on the shapes world (data.source synthetic, editor shapes_kontext)")
    chains = heldout_split(cfg.data, args.chains)
    pairs = turn_pairs(chains, Geometry(cfg.data.synthetic_image_size))
    turns = chains[0].num_turns
    inputs = pairs.inputs[[c * turns for c in range(len(chains))]].float() / 255
    editor = load_editor_with_lora(cfg, args.lora)
    print(f"{len(chains)} held-out chains, {cfg.editor.name_or_path}"
          f"{' + ' + str(args.lora) if args.lora else ''}, Euler {cfg.sampler.eval_num_steps} steps, seed {args.seed}",
          flush=True)
    results = []
    for k in args.k:
        results.append(best_of_k_path(editor, chains, inputs, k, args.seed, cfg.sampler.eval_num_steps))
        print(f"k = {k}: {results[-1].seconds / 60:.1f} min", flush=True)
    print(table(results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": str(args.config), "lora": str(args.lora) if args.lora else None,
                                         "seed": args.seed, "results": [asdict(r) for r in results]}, indent=1))
    return results


if __name__ == "__main__":
    main()
