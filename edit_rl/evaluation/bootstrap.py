"""How sure is a comparison of two evaluations on the same held-out chains? A paired bootstrap.

Both models edited the same chains with the same seeds, so a difference of any report number
(e.g. turn-3 EdiVal-O, tuned minus base) is resampled by drawing chains with replacement, the SAME
draw for both models, and recomputing the number on each model's resampled records exactly as the
report does (:func:`edit_rl.evaluation.summary.summarize_mode`). The percentile interval of the
resampled differences (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13) and
their standard deviation (the bootstrap standard error, ch. 6) are what the proof job prints
beside its targets.

Why this matters here: with 200 held-out chains, turn-3 EdiVal-IF is a handful of successes (1.5 %
is 3 chains), and EdiVal-O = sqrt(IF x CC) magnifies small counts: the shapes base editor scored
turn-3 Overall 11.9, 15.4 and 18.2 under three evaluation seeds.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edit_rl.evaluation.scores import TurnRecord
from edit_rl.evaluation.summary import ModeSummary, chains_of, summarize_mode

Statistic = Callable[[ModeSummary], float]


@dataclass(frozen=True)
class Interval:
    """A difference (tuned minus base) on all chains, its bootstrap standard error and percentile
    interval at ``level``."""

    estimate: float
    std_error: float
    low: float
    high: float
    level: float
    num_resamples: int

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def text(self, digits: int = 1) -> str:
        return (f"{self.estimate:+.{digits}f} ± {self.std_error:.{digits}f} "
                f"({100 * self.level:g}% interval {self.low:+.{digits}f} to {self.high:+.{digits}f})")


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default 'linear' method)."""
    position = q * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (position - lower) * (sorted_values[upper] - sorted_values[lower])


def _relabelled(chains: dict[str, list[TurnRecord]], draw: Sequence[str]) -> list[TurnRecord]:
    """The records of the drawn chains, each copy under its own chain id (a chain drawn twice
    counts twice, as two chains)."""
    return [dataclasses.replace(record, chain_id=f"{chain_id}#{k}")
            for k, chain_id in enumerate(draw) for record in chains[chain_id]]


def paired_bootstrap(base: Sequence[TurnRecord], tuned: Sequence[TurnRecord], mode: str, statistic: Statistic,
                     num_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """statistic(tuned) - statistic(base) on ``mode``'s records, with a paired bootstrap over chains
    (module docstring). ValueError if the two evaluations did not edit the same chains."""
    return paired_bootstraps(base, tuned, mode, [statistic], num_resamples, level, seed)[0]


def paired_bootstraps(base: Sequence[TurnRecord], tuned: Sequence[TurnRecord], mode: str,
                      statistics: Sequence[Statistic], num_resamples: int = 1000, level: float = 0.95,
                      seed: int = 0) -> list[Interval]:
    """:func:`paired_bootstrap` of several statistics on the same draws (each resample summarized once)."""
    if num_resamples < 2:
        raise ValueError(f"num_resamples must be >= 2, got {num_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    base_chains = chains_of([r for r in base if r.mode == mode])
    tuned_chains = chains_of([r for r in tuned if r.mode == mode])
    if set(base_chains) != set(tuned_chains):
        raise ValueError(f"{mode}: the evaluations scored different chains "
                         f"({len(set(base_chains) ^ set(tuned_chains))} not in both): not a paired comparison")
    if not base_chains:
        raise ValueError(f"no {mode} records")
    ids = sorted(base_chains)

    def differences(draw: Sequence[str]) -> list[float]:
        tuned_summary = summarize_mode(mode, _relabelled(tuned_chains, draw))
        base_summary = summarize_mode(mode, _relabelled(base_chains, draw))
        return [statistic(tuned_summary) - statistic(base_summary) for statistic in statistics]

    rng = random.Random(seed)
    draws = [differences(rng.choices(ids, k=len(ids))) for _ in range(num_resamples)]
    tail = (1.0 - level) / 2
    intervals = []
    for estimate, column in zip(differences(ids), zip(*draws)):
        resampled = sorted(column)
        mean = sum(resampled) / len(resampled)
        std_error = (sum((d - mean) ** 2 for d in resampled) / (len(resampled) - 1)) ** 0.5
        intervals.append(Interval(estimate=estimate, std_error=std_error, low=_percentile(resampled, tail),
                                  high=_percentile(resampled, 1.0 - tail), level=level,
                                  num_resamples=num_resamples))
    return intervals


def last_turn_overall(summary: ModeSummary) -> float:
    """EdiVal-O at the last turn (0 without a CC)."""
    return summary.turns[-1].overall or 0.0


def last_turn_if(summary: ModeSummary) -> float:
    """EdiVal-IF at the last turn (multi-turn: all turns succeeded; single-turn: marginal success)."""
    return summary.turns[-1].edival_if


def marginal_drop(summary: ModeSummary) -> float:
    """Marginal success, turn 1 minus the last turn (MT-EditFlow Table 7's drop)."""
    return summary.drop


# What a comparison report shows with uncertainty: the shapes proof's two targets and turn-T IF
# (names formatted with last=T, the last turn).
REPORTED_STATISTICS: tuple[tuple[str, Statistic], ...] = (
    ("EdiVal-O T{last}", last_turn_overall), ("EdiVal-IF T{last}", last_turn_if),
    ("Drop T1→T{last}", marginal_drop))


@dataclass(frozen=True)
class PairedDifferences:
    """One evaluation minus the baseline in one mode: an :class:`Interval` per ``REPORTED_STATISTICS``
    entry, or the reason there is none (the two did not score the same chains)."""

    label: str
    mode: str
    intervals: tuple[Interval, ...] = ()
    reason: str = ""


def paired_differences(baseline: Sequence[TurnRecord], others: Sequence[tuple[str, Sequence[TurnRecord]]],
                       num_resamples: int = 1000, seed: int = 0) -> list[PairedDifferences]:
    """Every other evaluation minus the baseline, in every mode both have, with paired-bootstrap
    intervals of ``REPORTED_STATISTICS`` (or the reason a pair cannot be bootstrapped)."""
    statistics = [statistic for _, statistic in REPORTED_STATISTICS]
    base_modes = {r.mode for r in baseline}
    out = []
    for label, records in others:
        for mode in sorted(base_modes & {r.mode for r in records}):
            try:
                intervals = paired_bootstraps(baseline, records, mode, statistics, num_resamples, seed=seed)
            except ValueError as err:
                out.append(PairedDifferences(label, mode, reason=str(err)))
            else:
                out.append(PairedDifferences(label, mode, tuple(intervals)))
    return out
