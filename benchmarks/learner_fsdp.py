"""Diagnostic for the overhead figure: a learner step with FSDP2 on a 1-rank process group (what a
LearnerActor runs when learner.num_ranks=1) / the same step on the plain module (the in-process
reference's Learner, no process group).

    python -m benchmarks.learner_fsdp [--quick]

One process, one torch thread: a plain Learner is built first, then a 1-rank gloo group and an
FSDP2 Learner; both train on the same 24 turn samples of a real rollout (6 micro-batches of 4),
step by step in turn. The losses must agree (printed).
"""
from __future__ import annotations

import os
import socket
import time

from benchmarks.report import Figure, median, save, show, spread


def _samples(cfg) -> list:
    import torch

    from edit_rl.buffer import TrainingSample
    from edit_rl.data import load_training_chains
    from edit_rl.editors.load import load_editor
    from edit_rl.editors.rollout import rollout_chains
    from edit_rl.training.turn_sample import split_rollout

    chains = load_training_chains(cfg.data)[:cfg.rollout.groups_per_step]
    editor = load_editor(cfg.editor)
    result = rollout_chains(editor, torch.rand(len(chains), 3, cfg.editor.resolution, cfg.editor.resolution),
                            [[t.instruction for t in c.turns] for c in chains], cfg.rollout.group_size, cfg.sampler,
                            torch.Generator().manual_seed(0))
    return [TrainingSample(f"r{b}", "c", 0, b, k, sample, float((-1) ** b), 0.5 + 0.1 * (-1) ** b, 0)
            for b, turns in enumerate(split_rollout(result)) for k, sample in enumerate(turns)]


def measure(rounds: int) -> list[Figure]:
    import torch
    import torch.distributed as torch_dist

    from benchmarks.system import load_world_config
    from edit_rl.buffer import shard_samples
    from edit_rl.training.learner import Learner
    from edit_rl.training.micro_batch import build_micro_batch

    torch.set_num_threads(1)
    cfg = load_world_config("synthetic")
    batches = [build_micro_batch(mb) for mb in shard_samples(_samples(cfg), 1, cfg.learner.micro_batch_size).ranks[0]]
    plain = Learner(cfg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    torch_dist.init_process_group("gloo", rank=0, world_size=1)
    sharded = Learner(cfg)
    times: dict[str, list[float]] = {"plain": [], "fsdp2": []}
    gap = 0.0
    for step in range(rounds + 1):  # step 0: warm-up
        losses = {}
        for name, learner in (("plain", plain), ("fsdp2", sharded)):
            start = time.perf_counter()
            losses[name] = learner.train_step(batches, step)["loss"]
            if step:
                times[name].append(time.perf_counter() - start)
        gap = max(gap, abs(losses["plain"] - losses["fsdp2"]))
    torch_dist.destroy_process_group()
    return [Figure("overhead/learner-fsdp2-1-rank", "learner step, FSDP2 on a 1-rank group / plain module",
                   median(times["fsdp2"]) / median(times["plain"]),
                   detail=f"FSDP2 {spread(times['fsdp2'])} s, plain {spread(times['plain'])} s, "
                          f"{len(batches)} micro-batches; max |loss gap| {gap:.1e}")]


def main(argv: list[str] | None = None) -> list[Figure]:
    from benchmarks.cli import parse

    args = parse(__doc__.split("\n")[0], argv, worlds=False)
    figures = show(measure(rounds=2 if args.quick else 3))
    if args.json:
        save(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
