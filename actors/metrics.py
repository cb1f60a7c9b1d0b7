"""Per-step scalars as Ray custom metrics, so a run shows in the Ray dashboard (Prometheus / Grafana).

    ray_metrics = RayMetrics(cfg.run_name)
    ray_metrics.log(step, flatten_metrics(metrics))    # or RunLogger(..., sinks=[ray_metrics.log])

Each scalar name becomes a Gauge "edit_rl_<name>" with "/" and every other character Ray rejects
turned into "_" (Ray keeps only names matching [a-zA-Z_][a-zA-Z0-9_]*), tagged run=<run name>;
the step itself is the gauge edit_rl_step. Gauges are made lazily, the first time a name is seen,
and once per process: a second RayMetrics in the same driver reuses them. Call after ray.init().
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from ray.util.metrics import Gauge

PREFIX = "edit_rl_"
TAG_KEY = "run"
_GAUGES: dict[str, Gauge] = {}  # sanitised name -> gauge, shared by every RayMetrics in this process


def sanitize_metric_name(name: str) -> str:
    """'reward/if_turn1' -> 'edit_rl_reward_if_turn1' (letters, digits and '_' only)."""
    return PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", name)


def gauge(name: str) -> Gauge:
    """The process-wide gauge for scalar `name` (made on first use)."""
    key = sanitize_metric_name(name)
    if key not in _GAUGES:
        _GAUGES[key] = Gauge(key, description=f"edit-rl per-step scalar {name}", tag_keys=(TAG_KEY,))
    return _GAUGES[key]


class RayMetrics:
    def __init__(self, run_name: str) -> None:
        self.tags = {TAG_KEY: run_name}

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        gauge("step").set(float(step), tags=self.tags)
        for name, value in scalars.items():
            gauge(name).set(float(value), tags=self.tags)
