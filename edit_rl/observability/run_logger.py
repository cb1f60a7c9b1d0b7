"""One object the driver calls once per step: files, TensorBoard, console, and any extra sinks.

    run = create_run_dir(cfg, resume=args.resume)
    with RunLogger(run, total_steps=cfg.trainer.num_steps, log_every=cfg.trainer.log_every,
                   resume_step=resumed_step, sinks=[RayMetrics(cfg.run_name).log]) as logger:
        for step in range(start, cfg.trainer.num_steps):
            ...
            logger.log(step, {**metrics, **timer.finish_step(images=n)})
            if step % cfg.trainer.sample_every == 0:
                logger.save_samples(step, trajectories)

A sink is any callable(step, flattened scalars); actors.metrics.RayMetrics.log is the one we have
(Ray gauges for the dashboard; edit_rl itself imports no Ray).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from edit_rl.observability.console import ConsoleProgress
from edit_rl.observability.metrics_log import MetricsLogger
from edit_rl.observability.run_dir import RunDir
from edit_rl.observability.sample_grid import TrajectorySample, save_sample_grid

Sink = Callable[[int, Mapping[str, float]], None]


class RunLogger:
    def __init__(self, run: RunDir, total_steps: int, *, resume_step: int | None = None, log_every: int = 1,
                 sinks: Sequence[Sink] = (), console: bool = True, stream: TextIO | None = None,
                 tensorboard: bool = True, deadline: float | None = None) -> None:
        self.run = run
        self.metrics = MetricsLogger(run.path, resume_step=resume_step, tensorboard=tensorboard)
        self.sinks = list(sinks)
        start = resume_step + 1 if resume_step is not None else 0
        # deadline: time.monotonic() at which a time budget ends the run (the console's eta heeds it)
        self.console = ConsoleProgress(total_steps, start, log_every, stream, deadline=deadline) if console else None

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Write one step everywhere; returns its flattened scalars."""
        scalars = self.metrics.log(step, metrics)
        for sink in self.sinks:
            sink(step, scalars)
        if self.console is not None:
            self.console.update(step, scalars)
        return scalars

    def save_samples(self, step: int, rows: Sequence[TrajectorySample]) -> Path:
        return save_sample_grid(rows, self.run.sample_path(step))

    def close(self) -> None:
        self.metrics.close()
        if self.console is not None:
            self.console.close()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
