"""The benchmark's numbers from per-turn successes and consistency terms (EdiVal-Bench; MT-EditFlow
Tables 1 and 7; docs/algorithms.md §7). Percentages, as the papers print them.

Inputs are per chain: ``successes[c][t]`` whether turn t+1 of chain c succeeded (the judge's score
>= the success threshold, :func:`turn_succeeded`), and one :class:`CCTerms` per scored pair.
Chains may differ in length: turn t is computed over the chains that have a turn t.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class CCTerms:
    """EdiVal-CC terms of one (reference, turn t) pair: DINOv3 cosines in [-1, 1], None where not
    measured; ``counted`` False on pairs EdiVal's ``eval.py`` leaves out of the benchmark's CC
    (from the chain's first background change on)."""

    object_score: Optional[float]
    background_score: Optional[float]
    counted: bool


def turn_succeeded(score: float, threshold: float) -> bool:
    """A turn succeeds when the single-turn judge's score reaches the threshold, on the judge's
    own scale (MT-EditFlow's binary IF: s_k = 1 iff the Likert score >= threshold)."""
    return score >= threshold


def _turn_columns(successes: Sequence[Sequence[bool]]) -> list[list[bool]]:
    """Per turn t, the values of the chains that have a turn t."""
    num_turns = max((len(chain) for chain in successes), default=0)
    return [[bool(chain[t]) for chain in successes if len(chain) > t] for t in range(num_turns)]


def _percent(values: Sequence[bool]) -> float:
    return 100.0 * sum(values) / len(values)


def cumulative_success(chain: Sequence[bool]) -> list[bool]:
    """EdiVal's multi-turn success of one chain: turn t counts only if turns 1..t ALL succeeded
    (MT-EditFlow's strict AND, section 4.1.1)."""
    out, ok = [], True
    for success in chain:
        ok = ok and bool(success)
        out.append(ok)
    return out


def edival_if(successes: Sequence[Sequence[bool]]) -> list[float]:
    """EdiVal-IF per turn, percent: the share of chains whose turns 1..t all succeeded
    (MT-EditFlow Table 1, EdiVal-IF columns; e.g. FLUX.1-Kontext-dev 59.97 / 32.69 / 16.61)."""
    return [_percent(column) for column in _turn_columns([cumulative_success(c) for c in successes])]


def marginal_success(successes: Sequence[Sequence[bool]]) -> list[float]:
    """Marginal success per turn, percent: the share of chains whose turn t succeeded, whatever
    happened before (MT-EditFlow Table 7 and Fig. 4; FLUX.1-Kontext-dev 59.97 / 56.29 / 51.40).
    Turn 1's equals EdiVal-IF's."""
    return [_percent(column) for column in _turn_columns(successes)]


def success_drop(marginal: Sequence[float]) -> float:
    """MT-EditFlow Table 7's cross-turn drop: marginal success at turn 1 minus at the last turn,
    in points (positive: worse at the end; FLUX.1-Kontext-dev 59.97 - 51.40 = 8.57)."""
    if not marginal:
        raise ValueError("no turns")
    return marginal[0] - marginal[-1]


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def edival_cc(pairs: Sequence[CCTerms]) -> Optional[float]:
    """EdiVal-CC of a set of pairs (e.g. every chain's reference-vs-turn-t pair), percent:
    EdiVal ``eval.py`` skips the pairs not ``counted`` (background changed); over the rest, the
    mean of the object scores that exist and the mean of the background scores that exist; CC is
    their mean (either alone if the other has no value; None if neither). The same aggregation as
    :func:`edit_rl.consistency.benchmark_cc`, times 100 (MT-EditFlow Table 1, EdiVal-CC columns)."""
    kept = [p for p in pairs if p.counted]
    object_mean = _mean([p.object_score for p in kept if p.object_score is not None])
    background_mean = _mean([p.background_score for p in kept if p.background_score is not None])
    present = [v for v in (object_mean, background_mean) if v is not None]
    return 100.0 * sum(present) / len(present) if present else None


def edival_overall(if_percent: float, cc_percent: Optional[float]) -> Optional[float]:
    """EdiVal-O = sqrt(EdiVal-IF x EdiVal-CC), percent (MT-EditFlow Table 1; e.g.
    sqrt(16.61 x 90.22) = 38.71). None without a CC; a negative CC (cosines can be, with random
    models) counts as 0."""
    if cc_percent is None:
        return None
    return math.sqrt(max(if_percent, 0.0) * max(cc_percent, 0.0))


def rounded_delta(base: Optional[float], other: Optional[float], digits: int = 2) -> Optional[float]:
    """``other - base`` of the numbers as printed (rounded to ``digits``), as Table 1's delta rows
    are (FLUX.1-Kontext-dev -> + MT-EditFlow-NFT, EdiVal-IF T2: 38.99 - 32.69 = +6.30)."""
    if base is None or other is None:
        return None
    return round(round(other, digits) - round(base, digits), digits)
