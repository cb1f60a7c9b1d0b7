"""Memory: object-store use and driver resident memory over 50 steps (flat, not growing), and the
peak resident memory of each role.

    python -m benchmarks.memory [--world cpu|synthetic|both] [--quick]

Sampled between steps, after every call that trains (benchmarks/system.py: RaySystem.run), so in
a combined run (run_all) the steps of the other benchmarks count too; the first 3 steps are
warm-up. Figures:

* object store: objects kept per step (the fitted slope of the object count) / objects a step
  creates (per rollout call: meta, images and one payload per trajectory and turn; plus the
  weights): a step whose objects were never released would give 1. Flat: below 0.01.
* driver: resident memory, mean over the last quarter of the steps / the first quarter. Flat: at
  most 1.02; the fitted slope is printed beside, and the growth of Python's own heap (tracemalloc)
  over the steps this script adds, which tells a leak of Python objects from native growth.
"""
from __future__ import annotations

import tracemalloc

import numpy as np

from benchmarks.memory_probe import role_peaks
from benchmarks.cli import run_worlds
from benchmarks.report import Figure
from benchmarks.system import RaySystem

WARMUP_STEPS = 3
FLAT_RSS = 1.02
FLAT_OBJECTS = 0.01


def _trend(steps: list[int], values: list[int]) -> tuple[float, float]:
    """(late quarter mean / early quarter mean, fitted slope per step)."""
    q = max(1, len(values) // 4)
    early, late = float(np.mean(values[:q])), float(np.mean(values[-q:]))
    slope = float(np.polyfit(steps, values, 1)[0]) if len(set(steps)) > 1 else 0.0
    return (late / early if early else float("inf")), slope


def objects_per_step(cfg) -> int:
    """Objects one step puts in the store: 2 + C*G*T per rollout call (actors/rollout_worker.py), + the weights."""
    r = cfg.rollout
    calls = -(-r.groups_per_step // r.chains_per_request)
    return calls * (2 + r.chains_per_request * r.group_size * r.num_turns) + 1


def measure(system: RaySystem, total_steps: int) -> list[Figure]:
    heap = ""
    if system.steps_done + 1 < total_steps:  # Python's own heap over these steps: a leak of objects shows here
        system.run(1, "sync")
        first = system.steps_done
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        while system.steps_done < total_steps:
            system.run(1, "sync")
        per_step = (tracemalloc.get_traced_memory()[0] - before) / (system.steps_done - first)
        tracemalloc.stop()
        heap = f"; Python heap (tracemalloc) over steps {first}-{system.steps_done}: {per_step / 1024:+.1f} KiB/step"
    samples = [s for s in system.memory if s.step > WARMUP_STEPS]
    steps = [s.step for s in samples]
    w, span = system.world, f"steps {steps[0]}-{steps[-1]}, {len(samples)} samples"
    created = objects_per_step(system.cfg)
    _, object_slope = _trend(steps, [s.store_objects for s in samples])
    store = [s.store_bytes for s in samples]
    store_ratio, store_slope = _trend(steps, store)
    rss = [s.driver_rss for s in samples]
    rss_ratio, rss_slope = _trend(steps, rss)
    figures = [
        Figure(f"memory/{w}/object-store", f"objects kept per step / objects a step creates ({w})",
               round(object_slope / created, 6) + 0.0, target=f"< {FLAT_OBJECTS} (flat)", ok=object_slope / created < FLAT_OBJECTS,
               detail=f"{span}: {min(s.store_objects for s in samples)}-{max(s.store_objects for s in samples)} "
                      f"objects in the store between steps, {created} created per step; bytes "
                      f"{np.mean(store) / 2**20:.2f} MiB on average, last/first quarter {store_ratio:.3f}, slope "
                      f"{store_slope / 1024:+.1f} KiB/step"),
        Figure(f"memory/{w}/driver-rss", f"driver resident memory, last / first quarter of the steps ({w})",
               rss_ratio, target=f"<= {FLAT_RSS} (flat)", ok=rss_ratio <= FLAT_RSS,
               detail=f"{span}: {np.mean(rss) / 2**20:.1f} MiB on average, slope {rss_slope / 1024:+.1f} KiB/step "
                      f"({rss_slope * 1000 / 2**20:+.0f} MiB per 1000 steps if it kept on){heap}"),
    ]
    for role, peaks in sorted(role_peaks().items()):
        figures.append(Figure(f"memory/{w}/peak/{role.replace(' ', '-')}", f"peak RSS of each {role} ({w})",
                              max(peaks) / 2**20, unit="MiB",
                              detail=f"{len(peaks)} process(es): " + ", ".join(f"{p / 2**20:.0f}" for p in peaks)))
    return figures


def measure_world(world: str, quick: bool) -> list[Figure]:
    with RaySystem(world) as system:
        return measure(system, total_steps=12 if quick else 50)


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_worlds(__doc__.split("\n")[0], argv, measure_world)


if __name__ == "__main__":
    main()
