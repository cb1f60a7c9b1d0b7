"""What a run leaves and what a user sees: run folder, metrics.jsonl + TensorBoard, stage timing,
console lines, sample grids. (Ray dashboard gauges live in actors/metrics.py.)"""
from edit_rl.observability.console import ConsoleProgress, format_duration, format_step_line
from edit_rl.observability.metrics_log import MetricsLogger, flatten_metrics, read_metrics
from edit_rl.observability.run_dir import RunDir, create_run_dir, latest_run_dir
from edit_rl.observability.run_logger import RunLogger
from edit_rl.observability.sample_grid import (
    GridLayout, TrajectorySample, GridTurn, make_sample_grid, save_sample_grid)
from edit_rl.observability.timing import StageTimer

__all__ = [
    "ConsoleProgress", "GridLayout", "MetricsLogger", "RunDir", "RunLogger", "StageTimer", "TrajectorySample",
    "GridTurn", "create_run_dir", "flatten_metrics", "format_duration", "format_step_line", "latest_run_dir",
    "make_sample_grid", "read_metrics", "save_sample_grid",
]
