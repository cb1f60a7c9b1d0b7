"""One printed figure: a labelled ratio (or amount) with its target and what it was measured from."""
from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    key: str  # stable id, e.g. "overhead/cpu"
    label: str  # what the number is
    value: float
    unit: str = "x"  # "x" for a ratio
    target: str = ""  # e.g. "<= 1.05"; empty when none is set
    ok: bool | None = None  # against the target; None without one
    detail: str = ""  # the measured parts the number comes from

    def line(self) -> str:
        verdict = "" if self.ok is None else ("  [meets target]" if self.ok else "  [MISSES target]")
        target = f"  (target {self.target})" if self.target else ""
        value = f"{self.value:.3f}" if self.unit == "x" else f"{self.value:.4g} {self.unit}"
        detail = f"\n      {self.detail}" if self.detail else ""
        return f"  {self.key:<32s} {self.label}: {value}{target}{verdict}{detail}"


def show(figures: Sequence[Figure]) -> list[Figure]:
    for figure in figures:
        print(figure.line(), flush=True)
    return list(figures)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """'median (min-max, n=N)' of a sample, for the detail lines."""
    return f"{median(values):.3f} ({min(values):.3f}-{max(values):.3f}, n={len(values)})"


def save(figures: Sequence[Figure], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(f) for f in figures], indent=1))


def markdown_table(figures: Sequence[Figure]) -> str:
    rows = ["| figure | what | value | target | |", "|---|---|---|---|---|"]
    for f in figures:
        value = f"{f.value:.3f}" if f.unit == "x" else f"{f.value:.4g} {f.unit}"
        verdict = "" if f.ok is None else ("meets" if f.ok else "misses")
        rows.append(f"| `{f.key}` | {f.label} | {value} | {f.target} | {verdict} |")
    return "\n".join(rows)
