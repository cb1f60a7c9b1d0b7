"""Framework overhead: the Ray system's synchronous step time / the same step done in one process.

    python -m benchmarks.overhead [--world cpu|synthetic|both] [--quick]

The two are interleaved step by step in one run (Ray step k, reference step k, alternating which
goes first), after warm-up steps; the figure is the median of the per-step ratios. Both sides do
step k of the same run (same data, seeds and weights), so their losses must agree: the check is
printed. Target: at most 1.05.
"""
from __future__ import annotations

from benchmarks.memory_probe import cpu_by_role, cpu_seconds, peak_rss
from benchmarks.reference_loop import ReferenceProcess
from benchmarks.cli import run_worlds
from benchmarks.report import Figure, median, spread
from benchmarks.system import RaySystem

TARGET = 1.05
SERIAL_STAGES = ("rollout", "buffer", "learner", "weight_sync")


def _scoring(row: dict[str, float], ray: bool) -> float:
    """Ray runs both services at once (the two stages end together); the reference runs them in turn."""
    j, c = row["timing/judge_s"], row["timing/consistency_s"]
    return max(j, c) if ray else j + c


def _stage_line(ray_rows: list[dict], ref_rows: list[dict]) -> str:
    parts = []
    for name in ("rollout", "scoring", "buffer", "learner", "weight_sync"):
        if name == "scoring":
            r, p = median([_scoring(x, True) for x in ray_rows]), median([_scoring(x, False) for x in ref_rows])
        else:
            r, p = median([x[f"timing/{name}_s"] for x in ray_rows]), median([x[f"timing/{name}_s"] for x in ref_rows])
        parts.append(f"{name} {r:.3f}/{p:.3f}")
    return "stages, Ray/in-process median s: " + ", ".join(parts)


def _role_line(per_step: list[dict[str, float]]) -> str:
    roles = sorted({r for step in per_step for r in step}, key=lambda r: -median([s.get(r, 0.0) for s in per_step]))
    parts = [f"{r} {median([s.get(r, 0.0) for s in per_step]):.2f}" for r in roles]
    return f"{median([sum(s.values()) for s in per_step]):.2f} = " + " + ".join(parts)


def measure(system: RaySystem, reference: ReferenceProcess, pairs: int, warmup: int) -> list[Figure]:
    if system.steps_done != reference.next_step:
        raise RuntimeError(f"the Ray system is at step {system.steps_done}, the reference at {reference.next_step}")
    ray_rows, ref_rows, cpu_ratios, ray_roles, ref_cpus = [], [], [], [], []
    ref_pid = frozenset({reference.pid})

    def ray_step() -> tuple[dict, float]:
        before = cpu_by_role(exclude=ref_pid)
        row = system.run(1)[0]
        after = cpu_by_role(exclude=ref_pid)
        ray_roles.append({role: after[role] - before.get(role, 0.0) for role in after})
        return row, sum(ray_roles[-1].values())

    def ref_step() -> tuple[dict, float]:
        cpu = cpu_seconds([reference.pid])
        row = reference.step()
        return row, cpu_seconds([reference.pid]) - cpu

    for i in range(warmup + pairs):
        if i % 2 == 0:
            (ray_row, ray_cpu), (ref_row, ref_cpu) = ray_step(), ref_step()
        else:
            (ref_row, ref_cpu), (ray_row, ray_cpu) = ref_step(), ray_step()
        if i >= warmup:
            ray_rows.append(ray_row)
            ref_rows.append(ref_row)
            cpu_ratios.append(ray_cpu / ref_cpu)
            ref_cpus.append(ref_cpu)
        else:
            ray_roles.pop()
    ratios = [a["timing/step_s"] / b["timing/step_s"] for a, b in zip(ray_rows, ref_rows)]
    loss_gap = max(abs(a["loss"] - b["loss"]) for a, b in zip(ray_rows, ref_rows))
    ray_s, ref_s = [r["timing/step_s"] for r in ray_rows], [r["timing/step_s"] for r in ref_rows]
    value = median(ratios)
    detail = (f"per-step ratio {spread(ratios)}; Ray sync step {spread(ray_s)} s, in-process step {spread(ref_s)} s\n"
              f"      {_stage_line(ray_rows, ref_rows)}\n"
              f"      same work: max |loss_Ray - loss_in-process| = {loss_gap:.2e} over {len(ratios)} steps; "
              f"in-process peak RSS {peak_rss(reference.pid) / 2**20:.0f} MiB")
    serial = [sum(a[f"timing/{s}_s"] for s in SERIAL_STAGES) / sum(b[f"timing/{s}_s"] for s in SERIAL_STAGES)
              for a, b in zip(ray_rows, ref_rows)]
    return [Figure(f"overhead/{system.world}", f"Ray sync step / in-process step ({system.world})", value,
                   target=f"<= {TARGET}", ok=value <= TARGET, detail=detail),
            Figure(f"overhead/{system.world}/cpu-seconds",
                   f"CPU seconds per step, every Ray process / the in-process loop ({system.world})",
                   median(cpu_ratios), detail=f"per-step ratio {spread(cpu_ratios)}; CPU s per step: in-process "
                                              f"{median(ref_cpus):.2f}, Ray {_role_line(ray_roles)}"),
            Figure(f"overhead/{system.world}/serial-stages",
                   f"same, rollout+buffer+learner+weight_sync only (stages neither side overlaps; {system.world})",
                   median(serial), detail=f"per-step ratio {spread(serial)}")]


def measure_world(world: str, quick: bool) -> list[Figure]:
    reference = ReferenceProcess(world)  # loads while the Ray system starts
    try:
        with RaySystem(world) as system:
            reference.wait_ready()
            return measure(system, reference, pairs=2 if quick else 6, warmup=1 if quick else 2)
    finally:
        reference.close()


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_worlds(__doc__.split("\n")[0], argv, measure_world)


if __name__ == "__main__":
    main()
