"""Weight sync: the time to get new LoRA weights to every rollout worker, as a fraction of a step.

    python -m benchmarks.weight_sync [--world cpu|synthetic|both] [--quick]

Measured end to end, the way the trainer does it: rank 0 of the learner puts the sampling adapter
in the object store and the driver only hands the reference on (``LearnerGroup.lora_state_ref``),
then every worker fetches and loads it at once (``actors.rollout_worker.push_weights``; the
trainer's own timing/weight_sync_s covers only the driver's part, the workers load lazily at their
next rollout). Divided by the median synchronous step time of the same run. Target: under 1 %. Beside it, interleaved: the earlier path through the driver (the state
fetched with ``LearnerGroup.lora_state``, then put in the object store again).
"""
from __future__ import annotations

import time

from actors.object_store import put
from actors.rollout_worker import push_weights
from benchmarks.cli import run_worlds
from benchmarks.report import Figure, median, spread
from benchmarks.system import RaySystem

TARGET_PERCENT = 1.0


def measure(system: RaySystem, reps: int) -> list[Figure]:
    trainer = system.trainer
    if len(system.sync_rows) < 3:
        system.run(3 - len(system.sync_rows), "sync")
    step_s = median([r["timing/step_s"] for r in system.sync_rows])
    adapter = trainer.sampling_adapter
    via_driver, direct, parts, loads, size = [], [], [], [], 0
    version = 10**9  # never a real version: every call makes the workers load
    for _ in range(reps):
        t0 = time.perf_counter()
        state = trainer.learners.lora_state(adapter)
        t1 = time.perf_counter()
        ref = put(state)
        t2 = time.perf_counter()
        version += 1
        load = push_weights(trainer.workers, version, ref)
        t3 = time.perf_counter()
        via_driver.append(t3 - t0)
        parts.append((t1 - t0, t2 - t1, t3 - t2))
        loads.append(max(load))
        size = sum(t.numel() * t.element_size() for t in state.values())
        t0 = time.perf_counter()
        ref = trainer.learners.lora_state_ref(adapter)
        version += 1
        push_weights(trainer.workers, version, ref)
        direct.append(time.perf_counter() - t0)
    percent = 100 * median(direct) / step_s
    logged = median([r["timing/weight_sync_s"] for r in system.sync_rows])
    w = system.world
    detail = (f"{len(trainer.workers)} worker(s), {size / 2**20:.2f} MiB of LoRA ({len(state)} tensors); end to end "
              f"{spread(direct)} s of a {step_s:.3f} s sync step\n"
              f"      the earlier path through the driver, parts (median s): to the driver {median([p[0] for p in parts]):.4f}, ray.put "
              f"{median([p[1] for p in parts]):.4f}, workers fetch+load {median([p[2] for p in parts]):.4f} "
              f"(inside the worker {median(loads):.4f}); trainer's logged timing/weight_sync_s {logged:.4f}")
    return [
        Figure(f"weight_sync/{w}", f"LoRA to every rollout worker / sync step ({w})", percent, unit="%",
               target=f"< {TARGET_PERCENT} %", ok=percent < TARGET_PERCENT, detail=detail),
        Figure(f"weight_sync/{w}/direct-vs-driver", f"rank 0's ref straight to the workers / via the driver ({w})",
               median(direct) / median(via_driver), detail=f"via the driver {spread(via_driver)} s"),
    ]


def measure_world(world: str, quick: bool) -> list[Figure]:
    with RaySystem(world) as system:
        return measure(system, reps=3 if quick else 10)


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_worlds(__doc__.split("\n")[0], argv, measure_world)


if __name__ == "__main__":
    main()
