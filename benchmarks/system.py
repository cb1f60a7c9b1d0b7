"""The Ray training system as the benchmarks drive it: one Trainer (actors/trainer.py) stepped a few
steps at a time, with each step's logged stage timings and the memory seen after it.

Worlds: "cpu" is the CPU default (jobs/configs/cpu_tiny.yaml: tiny VLM judge on vLLM, tiny
Grounding DINO + DINOv3 CC); "synthetic" swaps in the shapes world's rubric judge and colour
segmentation CC. Both switch off sample grids and checkpoints (not part of a step's work) and the
Edit-R1 filter (so every step trains the same 24 samples and steps are comparable).
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from actors.object_store import store_stats
from actors.ray_session import connect
from benchmarks.memory_probe import driver_rss

CPU_TINY = "jobs/configs/cpu_tiny.yaml"
COMMON = ["trainer.sample_every=0", "trainer.save_every=0", "filter.enabled=false"]
WORLDS: dict[str, list[str]] = {
    "cpu": [],
    "synthetic": ["judge.backend=synthetic", "consistency.detector=synthetic"],
}
OUTPUT_DIR = Path("runs/benchmarks")


def load_world_config(world: str):
    from edit_rl.config import load_config

    return load_config(CPU_TINY, [*COMMON, *WORLDS[world]])


def start_ray(num_cpus: int = 4) -> None:
    """A local Ray like the tests' (fractional CPUs on a small machine), or the one already
    connected; actor logs stay in files."""
    connect(num_cpus=num_cpus, log_to_driver=False)


@dataclass(frozen=True)
class MemorySample:
    step: int  # steps done when sampled
    driver_rss: int
    store_bytes: int
    store_objects: int


class RaySystem:
    """A Trainer on the current Ray session; ``run(n, mode)`` trains n more steps and returns their
    flattened metrics rows (timing/<stage>_s, timing/step_s, loss, ...)."""

    def __init__(self, world: str) -> None:
        from edit_rl.observability import create_run_dir
        from actors.trainer import Trainer

        start_ray()
        self.world = world
        self.cfg = load_world_config(world)
        self.trainer = Trainer(self.cfg, create_run_dir(self.cfg, output_dir=OUTPUT_DIR / world))
        self.memory: list[MemorySample] = []
        self.sync_rows: list[dict[str, float]] = []  # every synchronous step's row so far

    @property
    def steps_done(self) -> int:
        return self.trainer.step

    def run(self, n: int, mode: str = "sync") -> list[dict[str, float]]:
        from edit_rl.observability import flatten_metrics, read_metrics

        self.cfg.trainer.mode = mode
        self.cfg.trainer.num_steps = self.trainer.step + n
        with contextlib.redirect_stdout(io.StringIO()):  # the console progress lines
            self.trainer.fit()
        rows = [flatten_metrics(r) for r in read_metrics(self.trainer.run.path)[-n:]]
        if mode == "sync":
            self.sync_rows += rows
        store = store_stats()
        self.memory.append(MemorySample(self.trainer.step, driver_rss(), store.bytes_used, store.num_objects))
        return rows

    def close(self) -> None:
        self.trainer.close()

    def __enter__(self) -> "RaySystem":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
