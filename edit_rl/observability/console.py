"""What a user watching the run sees: one readable line per logged step, and a progress bar on a TTY.

    step 12/80 (15%) | IF 3.21 / 2.95 / 2.60 | CC 0.91 / 0.88 | kept 0.75 | loss +0.0123 | stale 1 | 4.20 s/step | eta 4m46s

The line reads these flattened scalar names (what a trainer logs; a missing one is left out):
reward/if_turn<k> and reward/cc_turn<k> (per turn, k = 1..T), filter/kept_fraction, loss, staleness/max,
timing/step_s (else the time measured between updates). `step` is the 0-based index of the step
just finished, shown as step+1 of total. The ETA is the mean wall time per step since this display
started (so a resumed run does not count the steps it skipped) times the steps left.

When the stream is not a TTY (ray job logs, files) only the log lines are written, one per line.
On a TTY the steps between log lines redraw a bar in place with a carriage return. No curses or
tqdm: tqdm is only in the venv as another package's dependency and its non-TTY output is noisy.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

IF_PREFIX = "reward/if_turn"
CC_PREFIX = "reward/cc_turn"


def format_duration(seconds: float) -> str:
    """12.3 -> '12.3s', 286 -> '4m46s', 7384 -> '2h03m'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def per_turn(scalars: Mapping[str, float], prefix: str) -> list[float]:
    """[v1, v2, ...] of the keys <prefix>1, <prefix>2, ... in turn order."""
    turns = sorted((int(k[len(prefix):]), v) for k, v in scalars.items()
                   if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [v for _, v in turns]


def format_step_line(step: int, total: int, scalars: Mapping[str, float], step_s: float | None = None,
                     eta_s: float | None = None, eta_by_budget: bool = False) -> str:
    done = step + 1
    parts = [f"step {done}/{total} ({100 * done / max(total, 1):.0f}%)"]
    for label, prefix in (("IF", IF_PREFIX), ("CC", CC_PREFIX)):
        values = per_turn(scalars, prefix)
        if values:
            parts.append(f"{label} " + " / ".join(f"{v:.2f}" for v in values))
    if "filter/kept_fraction" in scalars:
        parts.append(f"kept {scalars['filter/kept_fraction']:.2f}")
    if "loss" in scalars:
        parts.append(f"loss {scalars['loss']:+.4g}")
    if "staleness/max" in scalars:
        parts.append(f"stale {scalars['staleness/max']:g}")
    step_s = scalars.get("timing/step_s", step_s)
    if step_s is not None:
        parts.append(f"{step_s:.2f} s/step")
    if eta_s is not None:
        parts.append(f"eta {format_duration(eta_s)}" + (" (time budget)" if eta_by_budget else ""))
    return " | ".join(parts)


def progress_bar(step: int, total: int, eta_s: float | None, width: int = 30) -> str:
    done = step + 1
    filled = min(width, width * done // max(total, 1))
    eta = f" eta {format_duration(eta_s)}" if eta_s is not None else ""
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}{eta}"


class ConsoleProgress:
    """Prints format_step_line every `log_every` steps (and at the last); a bar in between on a TTY.
    With a ``deadline`` (a time on ``clock``: where trainer.time_budget_minutes ends the run) the eta
    is the time left to it when that comes first, marked "(time budget)"."""

    def __init__(self, total: int, start_step: int = 0, log_every: int = 1, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, deadline: float | None = None) -> None:
        self.total = total
        self.deadline = deadline
        self.log_every = max(log_every, 1)
        self.stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._start_step = start_step
        self._t0 = self._last = clock()
        isatty = getattr(self.stream, "isatty", None)
        self.is_tty = bool(isatty and isatty())
        self._bar_shown = False

    def update(self, step: int, scalars: Mapping[str, float]) -> str | None:
        """Record that `step` (0-based) finished; returns the line written, if one was."""
        now = self._clock()
        step_s, self._last = now - self._last, now
        steps_here = step + 1 - self._start_step
        eta = (now - self._t0) / steps_here * max(self.total - step - 1, 0) if steps_here > 0 else None
        by_budget = eta is not None and self.deadline is not None and self.deadline - now < eta
        if by_budget:
            eta = max(self.deadline - now, 0.0)
        if step % self.log_every == 0 or step + 1 >= self.total:
            line = format_step_line(step, self.total, scalars, step_s, eta, by_budget)
            self._write(("\r\033[K" if self._bar_shown else "") + line + "\n")
            self._bar_shown = False
            return line
        if self.is_tty:
            self._write("\r\033[K" + progress_bar(step, self.total, eta))
            self._bar_shown = True
        return None

    def close(self) -> None:
        if self._bar_shown:
            self._write("\n")
            self._bar_shown = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
