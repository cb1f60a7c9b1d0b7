"""Per-step metrics: metrics.jsonl (one JSON line per step) and TensorBoard event files.

Each `log(step, metrics)` appends {"step": step, **metrics} to metrics.jsonl, flushed and fsync'd
so a crash loses nothing already logged, and writes the numeric values, flattened to scalar names,
to TensorBoard. The JSON line keeps the record as given (lists, nested dicts, strings); NaN and
infinities are written as Python's json writes them (NaN, Infinity), which read_metrics reads back.

Flattening (`flatten_metrics`): nested dicts join keys with "/", list items append their 1-based
index to the name, so {"reward": {"if_turn": [4.1, 3.9]}} -> reward/if_turn1, reward/if_turn2.
Strings, None and other non-numbers are left out of the scalars.

Resume: `MetricsLogger(run_dir, resume_step=s)` drops the lines of steps > s (and a half-written
last line) from metrics.jsonl, so the resumed run's file has each step once; TensorBoard hides the
old events of steps > s (SummaryWriter purge_step).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested record as {"a/b" or "name<k>": float}; non-finite values kept."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        value = _plain(value)
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, name))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value, start=1):
                item = _plain(item)
                if isinstance(item, Mapping):
                    out.update(flatten_metrics(item, f"{name}{i}"))
                elif isinstance(item, (list, tuple)):
                    out.update(flatten_metrics({f"{name}{i}": item}))
                elif _is_number(item):
                    out[f"{name}{i}"] = float(item)
        elif _is_number(value):
            out[name] = float(value)
    return out


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (or of <run folder>/metrics.jsonl); a half-written last line is skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = []
    for line in path.read_text().splitlines():
        row = _parse(line)
        if row is not None:
            rows.append(row)
    return rows


class MetricsLogger:
    """Writes each step's metrics to <run_dir>/metrics.jsonl and to TensorBoard events in run_dir."""

    def __init__(self, run_dir: str | Path, resume_step: int | None = None, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / METRICS_FILE
        if resume_step is not None and self.path.exists():
            _truncate_after(self.path, resume_step)
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, float]:
        """Append one step; returns the flattened scalars (what went to TensorBoard)."""
        record = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items() if k != "step"}}
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        scalars = flatten_metrics({k: v for k, v in record.items() if k != "step"})
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, global_step=int(step))
            self._writer.flush()
        return scalars

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_after(path: Path, resume_step: int) -> None:
    """Keep the lines of steps <= resume_step; replace the file atomically (write, fsync, rename)."""
    kept = [line for line in path.read_text(encoding="utf-8").splitlines()
            if (row := _parse(line)) is not None and int(row.get("step", -1)) <= resume_step]
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in kept))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _parse(line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:  # the last line of a run killed mid-write
        return None
    return row if isinstance(row, dict) else None


def _plain(value: Any) -> Any:
    """torch tensors and numpy arrays / scalars -> Python numbers and lists."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, str)):
        return value.tolist()
    return value


def _jsonable(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bools count, as 0 / 1
