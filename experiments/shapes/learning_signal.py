"""Learning signal: do the learner's updates follow the reward, and does what one batch of chains
teaches carry over to other chains?

    python -m experiments.shapes.learning_signal [--config PATH] [--iters N] [--json OUT] [key=value ...]

Why: RL on the shapes world (experiments/shapes/configs/shapes_nft.yaml) moved held-out turn-3 Overall by only a
few points. Two measurements, in one process with no Ray (`benchmarks.reference_loop.ReferenceLoop`:
the library functions the actors call), on one batch of rollout.groups_per_step chains:

1. Gradient cosine at theta = old (before any update), on the batch's rollout: its kept groups are
   split into halves A and B (alternate chain ids), and the flattened LoRA gradient of the NFT loss
   is taken on A with noise seed 1 (gA1), on A with seeds 2 and 3, and on B with seed 1. A noise seed
   is the step the learner derives each sample's noise levels t and noise eps from (its default
   per-sample draws). cos(gA1, gA2) and cos(gA1, gA3): same data, other (t, eps): how much of a
   gradient is signal rather than noise. cos(gA1, gB1): what one set of chains teaches about others.
2. Direction test: for N iterations, the SAME chains rolled out with the SAME sampling seeds (those
   of step 0), scored, built into a training batch and trained on (one `Learner.train_step`, then
   the weight sync); one more rollout after the last update. If updates follow the reward, the
   reward of these fixed rollouts rises. Verdict: last minus first mean IF reward and the
   least-squares slope over iterations.

Output: JSON lines on stdout, first the cosines, then one record per iteration (it, chains, r_if:
mean trajectory IF reward as the reward config computes it, fine-averaged in [0, 1] for the preset;
if_turn: per-turn mean judge score, raw 1-5 scale; r_cc / cc_turn likewise for CC; kept groups;
loss and grad_norm of the update; seconds), then the verdict; --json writes them all to one file.

Results and their readings: docs/research-log.md.
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from benchmarks.reference_loop import ReferenceLoop
    from edit_rl.buffer import TrainingBatch, TrainingSample

DEFAULT_CONFIG = Path("experiments/shapes/configs/shapes_nft.yaml")
NOISE_SEEDS = (1, 2, 3)  # gA1 against gA2 and gA3; gB1


# ---- gradient cosine --------------------------------------------------------------------------
def halves(batch: TrainingBatch) -> tuple[list[TrainingSample], list[TrainingSample]]:
    """The batch's samples split by chain into two disjoint halves: sorted chain ids 0, 2, 4, ...
    (A) and 1, 3, 5, ... (B). Needs at least two kept groups."""
    chain_ids = sorted({s.chain_id for s in batch.samples})
    if len(chain_ids) < 2:
        raise ValueError(f"the batch keeps {len(chain_ids)} group(s); the cosine needs at least 2")
    a = set(chain_ids[0::2])
    return [s for s in batch.samples if s.chain_id in a], [s for s in batch.samples if s.chain_id not in a]


def lora_gradient(loop: ReferenceLoop, samples: Sequence[TrainingSample], noise_seed: int) -> torch.Tensor:
    """The flattened gradient (float64) of the mean NFT loss over ``samples`` with respect to the
    trained LoRA weights, with each sample's noise levels and noise drawn as the learner draws them
    at step ``noise_seed`` (and LoRA dropout seeded like its rank 0). The weights do not change."""
    import torch

    from edit_rl.training.losses import nft_micro_batch
    from edit_rl.training.micro_batch import build_micro_batch, noise_keys
    from edit_rl.training.seeding import derived_seed, sample_generators

    cfg, learner = loop.cfg, loop.learner
    shared = cfg.objective.nft.shared_group_noise
    if cfg.objective.name != "nft":
        raise ValueError(f"the gradient is the NFT loss's; objective.name is {cfg.objective.name!r}")
    params = learner.backend.params
    size = cfg.learner.micro_batch_size
    for p in params:
        p.grad = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(cfg.trainer.seed, noise_seed, "rank0"))
        for start in range(0, len(samples), size):
            mb = build_micro_batch(samples[start:start + size])
            generators = sample_generators(cfg.trainer.seed, noise_seed, noise_keys(mb, shared))
            nft_micro_batch(learner.editor, mb.turns, mb.r, mb.weight, generators, cfg.objective.nft,
                            1.0 / len(samples), learner.backend.backward)
    grad = torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten().double() for p in params])
    for p in params:
        p.grad = None
    return grad


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """The cosine of the angle between two flattened gradients."""
    return float(a @ b / (a.norm() * b.norm()))


def gradient_cosines(loop: ReferenceLoop, batch: TrainingBatch) -> dict[str, Any]:
    """cos(gA1, gA2), cos(gA1, gA3) (same data, other noise) and cos(gA1, gB1) (other chains)."""
    half_a, half_b = halves(batch)
    first, *others = (lora_gradient(loop, half_a, seed) for seed in NOISE_SEEDS)
    other_chains = lora_gradient(loop, half_b, NOISE_SEEDS[0])
    return {"test": "gradient_cosine",
            "same_data_other_noise": [round(cosine(first, g), 4) for g in others],
            "other_chains": round(cosine(first, other_chains), 4),
            "norm_a": float(first.norm()), "norm_b": float(other_chains.norm()),
            "chains_a": len({s.chain_id for s in half_a}), "chains_b": len({s.chain_id for s in half_b})}


# ---- direction test ---------------------------------------------------------------------------
def batch_chains(batch: TrainingBatch) -> list[str]:
    """The chains whose groups came out of the assembler into ``batch``: kept, filtered or dropped."""
    return sorted({s.chain_id for s in batch.samples} | {d.chain_id for d in batch.dropped})


def batch_record(it: int, batch: TrainingBatch) -> dict[str, Any]:
    """What iteration ``it``'s rollout scored: its chains, the mean rewards over the scored groups
    (filtered ones included), the number of groups kept for training."""
    s = batch.stats
    if s.r_if_mean is None or s.r_cc_mean is None:
        raise RuntimeError(f"iteration {it}: no group was scored ({s.num_nan_groups} with non-finite scores)")
    return {"it": it, "chains": batch_chains(batch), "r_if": round(s.r_if_mean, 4),
            "if_turn": [round(x, 3) for x in s.if_turn_mean], "r_cc": round(s.r_cc_mean, 4),
            "cc_turn": [round(x, 4) for x in s.cc_turn_mean], "kept": s.num_kept_groups}


def direction_test(loop: ReferenceLoop, chains: list, iters: int, first: TrainingBatch | None = None,
                   emit: Callable[[dict[str, Any]], None] = lambda record: None) -> list[dict[str, Any]]:
    """``iters`` updates on rollouts of the same ``chains`` with step 0's sampling seeds, and one
    more rollout after the last: ``iters + 1`` records (each also passed to ``emit``). Iteration
    ``it`` rolls out as step ``it`` and trains as step ``it``; ``first`` is iteration 0's batch if
    it was already rolled out (its seconds then count only the update)."""
    records = []
    for it in range(iters + 1):
        start = time.perf_counter()
        batch = first if it == 0 and first is not None else loop.rollout_batch(it, chains, seed_step=0)
        record = batch_record(it, batch)
        if it < iters and batch.samples:
            metrics = loop.train(batch, it)
            record.update(loss=round(metrics["loss"], 5), grad_norm=round(metrics["grad_norm"], 5))
        record["s"] = round(time.perf_counter() - start, 1)
        emit(record)
        records.append(record)
    return records


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` over 0, 1, 2, ... (per iteration)."""
    n = len(values)
    if n < 2:
        raise ValueError("a slope needs at least two values")
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / sum((x - mean_x) ** 2 for x in range(n))


def verdict(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whether the fixed chains' mean IF reward rose: last minus first, and the slope."""
    rewards = [r["r_if"] for r in records]
    delta, per_iter = rewards[-1] - rewards[0], slope(rewards)
    rose = delta > 0 and per_iter > 0
    return {"test": "direction", "r_if_first": rewards[0], "r_if_last": rewards[-1], "delta": round(delta, 4),
            "slope_per_iter": round(per_iter, 5),
            "verdict": "rose: updates follow the reward" if rose else "did not rise"}


# ---- the run ----------------------------------------------------------------------------------
def run(loop: ReferenceLoop, iters: int, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Cosines on the sampler's next batch of chains at theta = old (``loop`` freshly built), then
    the direction test on the same chains; every record also goes to ``emit``."""
    if iters < 1:
        raise ValueError(f"--iters must be >= 1, got {iters}")
    chains = loop.sampler.next(loop.cfg.rollout.groups_per_step)
    first = loop.rollout_batch(0, chains)
    cosines = gradient_cosines(loop, first)
    emit(cosines)
    records = direction_test(loop, chains, iters, first=first, emit=emit)
    result = verdict(records)
    emit(result)
    return {"cosines": cosines, "direction": records, "verdict": result}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"run config (default {DEFAULT_CONFIG})")
    parser.add_argument("--iters", type=int, default=5, help="updates in the direction test (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write every record to this JSON file")
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value (e.g. learner.lr=0.002)")
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f"--iters must be >= 1, got {args.iters}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from benchmarks.reference_loop import ReferenceLoop
    from edit_rl.config import load_config

    args = parse(argv)
    cfg = load_config(args.config, args.overrides)
    torch.set_num_threads(cfg.cluster.cpu_threads)
    result = run(ReferenceLoop(cfg=cfg), args.iters, lambda record: print(json.dumps(record), flush=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": str(args.config), "overrides": args.overrides, **result}, indent=1))
    return result


if __name__ == "__main__":
    main()
