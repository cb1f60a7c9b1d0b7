"""The whole suite in one run: every benchmark figure, printed, saved as JSON and as a table.

    python -m benchmarks.run_all [--world cpu|synthetic|both] [--quick] [--json PATH]

Per world, one Ray system (a Trainer on a local Ray) serves, in order: overhead (interleaved
with the in-process reference loop), pipelining, weight sync, then memory, which reads the memory
samples of all the steps the system ran: on the CPU default it first tops the run up to 50 steps;
the synthetic world's steps cost the same, so it reports over the ~20 steps already run (50 of
both would not fit in 15 minutes). Then scoring and the learner diagnostic (child processes: no
Ray, one thread) and scaling. The last full run: results/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actors.ray_session import disconnect
from benchmarks import memory, overhead, pipelining, scaling, weight_sync
from benchmarks.reference_loop import ReferenceProcess, child_env
from benchmarks.report import Figure, markdown_table, save, show
from benchmarks.system import OUTPUT_DIR, RaySystem


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    return (f"{os.cpu_count()} cores ({model}), {mem / 2**20:.0f} GiB RAM, Python {platform.python_version()}, "
            f"load average {load}")


MEMORY_STEPS = {"cpu": 50, "synthetic": 0}  # 0: the steps the other benchmarks ran


def phase(name: str, start: float) -> None:
    print(f"[{name}] at {(time.perf_counter() - start) / 60:.1f} min", flush=True)


def world_figures(world: str, quick: bool, start: float) -> list[Figure]:
    phase(f"{world}: starting the Ray system and the in-process reference", start)
    reference = ReferenceProcess(world)  # loads its models while the Ray system starts
    figures: list[Figure] = []
    try:
        with RaySystem(world) as system:
            reference.wait_ready()
            phase(f"{world}: overhead", start)
            figures += show(overhead.measure(system, reference, pairs=2 if quick else 6, warmup=1))
            reference.close()  # its cores go back to the Ray system for the rest
            phase(f"{world}: pipelining", start)
            figures += show(pipelining.measure(system, blocks=1 if quick else 2, block_steps=2, warmup=0))
            phase(f"{world}: weight sync", start)
            figures += show(weight_sync.measure(system, reps=3 if quick else 10))
            phase(f"{world}: memory", start)
            figures += show(memory.measure(system, total_steps=12 if quick else MEMORY_STEPS[world]))
    finally:
        reference.close()
    return figures


def child_figures(module: str, args: list[str]) -> list[Figure]:
    """``python -m <module> <args>`` in a child process with one thread; its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        with child_env(1):
            subprocess.run([sys.executable, "-m", module, "--json", str(out), *args], check=True,
                           stdout=sys.stdout, stderr=subprocess.DEVNULL)
        return [Figure(**f) for f in json.loads(out.read_text())]


def main(argv: list[str] | None = None) -> list[Figure]:
    from benchmarks.cli import parse

    args = parse(__doc__.split("\n")[0], argv)
    start = time.perf_counter()
    command = "python -m benchmarks.run_all " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"machine: {machine()}\ncommand: {command.strip()}", flush=True)
    figures: list[Figure] = []
    quick = ["--quick"] if args.quick else []
    try:  # one Ray session throughout (each world's system releases its actors and services)
        for world in args.worlds:
            figures += world_figures(world, args.quick, start)
        phase("scoring", start)
        figures += child_figures("benchmarks.scoring", ["--world", args.world, *quick])
        phase("learner diagnostic", start)
        figures += child_figures("benchmarks.learner_fsdp", quick)
        phase("scaling", start)
        figures += scaling.measure(args.worlds, rounds=1 if args.quick else 2)
    finally:
        disconnect()
    elapsed = time.perf_counter() - start
    print(f"\n{markdown_table(figures)}\n\nmachine: {machine()}\nwall time: {elapsed / 60:.1f} min", flush=True)
    path = args.json or OUTPUT_DIR / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    save(figures, path)
    print(f"figures saved: {path}")
    return figures


if __name__ == "__main__":
    main()
