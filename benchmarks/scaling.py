"""Scaling: rollout throughput with 1 and 2 rollout workers; judge (and consistency) throughput
with 1 and 2 Serve replicas (the applications stay up until Ray stops: deleting costs seconds).

    python -m benchmarks.scaling [--world cpu|synthetic|both] [--quick]

Rollouts: two RolloutWorker actors; a round sends the same requests (one chain each, G rollouts of
T turns, initial weights) all to one worker, or round-robin to both; rounds alternate. Services:
for each scorer two Serve applications of the real deployment (actors/scoring_services.py), one
with 1 replica and one with 2 (fixed), side by side; a round sends every trajectory of the rollouts
at once (the dispatcher's pattern), rounds alternate between the two. Images = edited turn images.
On this machine the ceiling is the free cores, not Ray: the load average is printed beside.
"""
from __future__ import annotations

import os
import time

import numpy as np
import psutil

from benchmarks.memory_probe import cpu_seconds
from benchmarks.report import Figure, median, save, show, spread

CHAINS = 4  # rollout requests per round (one chain each)


def _loadavg() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _replicas(app: str) -> list[int]:
    return [p.pid for p in psutil.Process().children(recursive=True) if f"ServeReplica:{app}:" in " ".join(p.cmdline())]


class _Meter:
    """Images/s per round and the cores the measured processes kept busy (their CPU s / wall s)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.rates: list[float] = []
        self.cores: list[float] = []

    def time(self, fn, images: int):
        cpu, start = cpu_seconds(self.pids), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - start
        self.rates.append(images / wall)
        self.cores.append((cpu_seconds(self.pids) - cpu) / wall)
        return out

    def summary(self, name: str) -> str:
        return f"{name} {spread(self.rates)} img/s using {median(self.cores):.2f} cores"


def _rollout_round(workers: list, requests: list) -> list:
    """Every request's images reference, once all are rolled out."""
    from actors.rollout_worker import roll_out_in_turn

    return [refs[1] for refs in roll_out_in_turn(workers, requests)]


def rollout_scaling(cfg, rounds: int) -> tuple[Figure, list]:
    """The 2-vs-1-worker figure and the image refs of the last round (for the services)."""
    from actors.rollout_worker import (ChainInput, RolloutRequest, RolloutWorker, stop_rollout_workers,
                                       wait_for_rollout_workers)
    from edit_rl.data import load_training_chains

    chains = load_training_chains(cfg.data)[:CHAINS]
    inputs = [ChainInput(c.chain_id, np.asarray(c.load_image(cfg.data.image_dir).convert("RGB")),
                         tuple(t.instruction for t in c.turns)) for c in chains]
    requests = [RolloutRequest(0, (c,), cfg.rollout.group_size, 1000 + i, -1, [None]) for i, c in enumerate(inputs)]
    workers = [RolloutWorker.options(num_cpus=cfg.cluster.rollout_num_cpus).remote(cfg, i) for i in range(2)]
    _rollout_round(workers, requests[:2])  # warm-up: one request each
    images = CHAINS * cfg.rollout.group_size * cfg.rollout.num_turns
    pids = wait_for_rollout_workers(workers)
    meters = {k: _Meter(pids[:k]) for k in (1, 2)}
    refs: list = []
    for _ in range(rounds):
        for k in (1, 2):
            refs = meters[k].time(lambda: _rollout_round(workers[:k], requests), images)
    stop_rollout_workers(workers)
    figure = Figure("scaling/rollout/2-vs-1-workers", "rollout images/s, 2 workers / 1 worker",
                    median(meters[2].rates) / median(meters[1].rates),
                    detail=f"{meters[1].summary('1 worker')}, {meters[2].summary('2 workers')}; "
                           f"{os.cpu_count()} cores, load average {_loadavg()}")
    return figure, refs


def service_scaling(kind: str, cfg, world: str, image_refs: list, rounds: int) -> Figure:
    from actors.scoring_services import ConsistencyItem, JudgeItem, deploy_fixed_replicas
    from edit_rl.data import load_training_chains, turn_specs

    chains = load_training_chains(cfg.data)[:CHAINS]
    items = []
    for chain, ref in zip(chains, image_refs):
        for g in range(cfg.rollout.group_size):
            items.append(JudgeItem([ref], g, tuple(t.instruction for t in chain.turns)) if kind == "judge" else
                         ConsistencyItem([ref], g, turn_specs(chain.turns, cfg.consistency.pairing)))
    handles = {k: deploy_fixed_replicas(cfg, kind, k, f"bench-{world}-{kind}-{k}") for k in (1, 2)}
    meters = {k: _Meter(_replicas(f"bench-{world}-{kind}-{k}")) for k in (1, 2)}
    images = len(items) * cfg.rollout.num_turns

    def burst(handle) -> None:
        [r.result() for r in [handle.remote(item) for item in items]]

    for handle in handles.values():  # warm-up
        burst(handle)
    for _ in range(rounds):
        for k, handle in handles.items():
            meters[k].time(lambda: burst(handle), images)
    return Figure(f"scaling/{world}/{kind}/2-vs-1-replicas", f"{kind} images/s, 2 replicas / 1 replica ({world})",
                  median(meters[2].rates) / median(meters[1].rates),
                  detail=f"{meters[1].summary('1 replica')}, {meters[2].summary('2 replicas')} "
                         f"({len(items)} requests at once, max_batch_size {getattr(cfg, kind).scaling.max_batch_size}); "
                         f"load average {_loadavg()}")


def measure(worlds: list[str], rounds: int) -> list[Figure]:
    from actors.scoring_services import start_serve
    from benchmarks.system import load_world_config, start_ray

    start_ray()
    start_serve()
    rollout_figure, refs = rollout_scaling(load_world_config(worlds[0]), rounds)
    figures = show([rollout_figure])
    for world in worlds:
        cfg = load_world_config(world)
        for kind in ("judge", "consistency"):
            figures += show([service_scaling(kind, cfg, world, refs, rounds)])
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    from actors.ray_session import disconnect
    from benchmarks.cli import parse

    args = parse(__doc__.split("\n")[0], argv)
    try:
        figures = measure(args.worlds, rounds=1 if args.quick else 4)
    finally:
        disconnect()
    if args.json:
        save(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
