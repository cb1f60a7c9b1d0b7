"""Per-step stage timing: timing/<stage>_s, the step's wall time and image throughput.

    timer = StageTimer()
    for step in ...:
        with timer.stage("rollout", images=num_images):
            ...
        with timer.stage("judge"):
            ...
        timer.add("weight_sync", seconds_measured_on_an_actor)
        metrics.update(timer.finish_step(images=num_images))

finish_step returns {"timing/rollout_s", "timing/judge_s", ..., "timing/step_s",
"throughput/images_per_s", "throughput/rollout_images_per_s"} and starts the next step. A stage
entered twice in one step adds up (its time and its images).
timing/step_s is the wall time since the previous finish_step (or since the timer was made, or
start_step()), so it includes whatever ran outside the named stages.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class StageTimer:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._stages: dict[str, float] = {}
        self._images: dict[str, int] = {}
        self._step_start = clock()

    def start_step(self) -> None:
        """Start the step clock now (e.g. after an evaluation that should not count) and clear stages."""
        self._stages, self._images = {}, {}
        self._step_start = self._clock()

    @contextmanager
    def stage(self, name: str, images: int | None = None) -> Iterator[None]:
        """Time the block as stage `name`; with `images`, also report that stage's images/s."""
        start = self._clock()
        try:
            yield
        finally:
            self.add(name, self._clock() - start, images)

    def add(self, name: str, seconds: float, images: int | None = None) -> None:
        """Count a duration measured elsewhere (an actor's own timing) under stage `name`."""
        self._stages[name] = self._stages.get(name, 0.0) + float(seconds)
        if images is not None:
            self._images[name] = self._images.get(name, 0) + int(images)

    def finish_step(self, images: int | None = None) -> dict[str, float]:
        """This step's timings (and images/s over the step's wall time when `images` is given)."""
        now = self._clock()
        step_s = now - self._step_start
        out = {f"timing/{name}_s": s for name, s in self._stages.items()}
        out["timing/step_s"] = step_s
        for name, n in self._images.items():
            out[f"throughput/{name}_images_per_s"] = _rate(n, self._stages[name])
        if images is not None:
            out["throughput/images_per_s"] = _rate(images, step_s)
        self._stages, self._images = {}, {}
        self._step_start = now
        return out


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")
