"""Pipelining: the asynchronous step time / the synchronous step time, next to its bounds.

    python -m benchmarks.pipelining [--world cpu|synthetic|both] [--quick]

One Trainer alternates blocks of synchronous and asynchronous steps (trainer.mode is read every
step). An async block's first step has nothing in flight and its last launches nothing, so both
are left out; the rest overlap step k+1's rollouts and scoring with step k's buffer, learner and
weight sync. Bounds from the sync
steps' stage times (median s):

* the stage bound max(stage) / sum(stages), stages rollout, scoring, buffer, learner, weight_sync
  (scoring = the two services, which run at the same time in both modes);
* this design's bound max(gen, train) / (gen + train), gen = rollout + scoring,
  train = buffer + learner + weight_sync: only those two halves overlap.

"Closeness" = achieved saving / the design bound's saving: (1 - async/sync) / (1 - bound).
"""
from __future__ import annotations

from benchmarks.cli import run_worlds
from benchmarks.report import Figure, median, spread
from benchmarks.system import RaySystem

GEN = ("rollout", "scoring")
TRAIN = ("buffer", "learner", "weight_sync")


def _stage(rows: list[dict], name: str) -> float:
    if name == "scoring":
        return median([max(r["timing/judge_s"], r["timing/consistency_s"]) for r in rows])
    return median([r[f"timing/{name}_s"] for r in rows])


def measure(system: RaySystem, blocks: int, block_steps: int, warmup: int = 1) -> list[Figure]:
    sync_rows, async_rows = [], []
    if warmup:
        system.run(warmup, "sync")
    for _ in range(blocks):
        sync_rows += system.run(block_steps, "sync")
        async_rows += system.run(block_steps + 2, "async")[1:-1]
    sync_s, async_s = median([r["timing/step_s"] for r in sync_rows]), median([r["timing/step_s"] for r in async_rows])
    stages = {name: _stage(sync_rows, name) for name in (*GEN, *TRAIN)}
    gen, train = sum(stages[s] for s in GEN), sum(stages[s] for s in TRAIN)
    issue_bound = max(stages.values()) / sum(stages.values())
    design_bound = max(gen, train) / (gen + train)
    ratio = async_s / sync_s
    closeness = (1 - ratio) / (1 - design_bound)
    stretch = {s: _stage(async_rows, s) / stages[s] for s in ("learner",)}
    w = system.world
    detail = (f"sync step {spread([r['timing/step_s'] for r in sync_rows])} s, async step "
              f"{spread([r['timing/step_s'] for r in async_rows])} s\n"
              f"      sync stages (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()) +
              f"; gen {gen:.3f}, train {train:.3f}\n"
              f"      learner stage async/sync {stretch['learner']:.2f} (slowed by the rollouts it now overlaps)")
    return [
        Figure(f"pipelining/{w}", f"async step / sync step ({w})", ratio, detail=detail),
        Figure(f"pipelining/{w}/bound-issue", f"bound max(stage)/sum(stages) ({w})", issue_bound),
        Figure(f"pipelining/{w}/bound-design", f"bound max(gen, train)/(gen + train) ({w})", design_bound),
        Figure(f"pipelining/{w}/closeness", f"achieved saving / design bound's saving ({w})", closeness),
    ]


def measure_world(world: str, quick: bool) -> list[Figure]:
    with RaySystem(world) as system:
        return measure(system, blocks=1 if quick else 2, block_steps=2 if quick else 4)


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_worlds(__doc__.split("\n")[0], argv, measure_world)


if __name__ == "__main__":
    main()
