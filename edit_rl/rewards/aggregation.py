"""Per-turn judge scores -> trajectory-level IF and CC rewards (MT-EditFlow sections 4.1-4.2).

Input: per-turn scores (N, G, T). Output: one trajectory reward per rollout, (N, G).

How callers pass scores:

* Binary strategies (``"binary_and"``, ``"binary_avg"``) take success indicators that are
  exactly 0 or 1. If the judge gives a graded score instead, turn it into indicators first
  with :func:`binarize` (``score >= threshold`` -> 1). Aggregation never thresholds by itself:
  a non-{0,1} value in a binary strategy is an error, not a silent cast.
* The fine-grained strategy (``"fine_avg"``) takes raw scores on a known scale ``(lo, hi)``
  and normalises them with :func:`normalize_scores`. MT-EditFlow Likert scores: ``(1, 5)``
  (the default). Edit-R1 logit scores: the expected score token value over {0..5} is
  ``(0, 5)``; if the judge already returned the normalised expectation (Edit-R1 eq. 11),
  pass ``(0, 1)`` and normalisation is the identity. Scores may be fractional (a logit
  expectation or an average of samples); they only have to lie inside ``[lo, hi]``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from edit_rl.rewards._validation import (
    check_finite,
    check_ndim,
    check_range,
    result_dtype,
)

AggregationStrategy = Literal["binary_and", "binary_avg", "fine_avg"]
AGGREGATION_STRATEGIES: tuple[str, ...] = get_args(AggregationStrategy)

LIKERT_SCALE: tuple[float, float] = (1.0, 5.0)
"""MT-EditFlow fine-grained IF scale (Likert 1-5, section 4.2)."""

EDIT_R1_LOGIT_SCALE: tuple[float, float] = (0.0, 5.0)
"""Edit-R1 score tokens {0, ..., 5} before normalisation (Edit-R1 eqs. 10-11)."""

UNIT_SCALE: tuple[float, float] = (0.0, 1.0)
"""Scores already normalised to [0, 1] (e.g. Edit-R1 eq. 11 output)."""

_PER_TURN = "(num_groups, group_size, num_turns)"


def _check_per_turn(scores: Tensor, name: str) -> None:
    check_ndim(scores, 3, name, _PER_TURN)
    check_finite(scores, name)


def _check_binary(scores: Tensor, name: str) -> None:
    not_binary = (scores != 0) & (scores != 1)
    num_bad = int(not_binary.sum())
    if num_bad:
        example = float(scores[not_binary].flatten()[0])
        raise ValueError(
            f"{name} must be binary success indicators in {{0, 1}}; {num_bad} value(s) "
            f"are not (e.g. {example}). Threshold graded scores with binarize() first."
        )


def binarize(scores: Tensor, threshold: float) -> Tensor:
    """Binary success indicator s_k = 1[score_k >= threshold] (MT-EditFlow section 4.2, s_k).

    The single way graded judge scores become the binary s_k used by ``"binary_and"`` and
    ``"binary_avg"``; ties at the threshold count as success. Returns float {0, 1}.
    """
    check_finite(scores, "scores")
    return (scores >= threshold).to(result_dtype(scores))


def normalize_scores(scores: Tensor, scale: tuple[float, float] = LIKERT_SCALE) -> Tensor:
    """Min-max normalisation to [0, 1]: s_bar = (s - lo) / (hi - lo) (Edit-R1 eq. 11).

    MT-EditFlow appendix B.2 normalises its 1-5 Likert IF scores to [0, 1] the same way.
    ``scale = (lo, hi)`` is the judge's score range; values outside it raise ``ValueError``.
    """
    lo, hi = float(scale[0]), float(scale[1])
    if not hi > lo:
        raise ValueError(f"score scale must satisfy lo < hi, got {scale}")
    check_finite(scores, "scores")
    check_range(scores, lo, hi, f"scores (scale {scale})")
    return (scores.to(result_dtype(scores)) - lo) / (hi - lo)


def binary_and(per_turn_success: Tensor) -> Tensor:
    """Binary MT: R_IF = AND_k s_k, 1 only if every turn succeeds (MT-EditFlow section 4.2).

    (N, G, T) in {0, 1} -> (N, G). Sparse: with per-turn success p, P(R_IF = 1) = p^T.
    """
    _check_per_turn(per_turn_success, "per_turn_success")
    _check_binary(per_turn_success, "per_turn_success")
    return per_turn_success.to(result_dtype(per_turn_success)).amin(dim=-1)


def binary_avg(per_turn_success: Tensor) -> Tensor:
    """Binary Average: R_IF = (1/T) sum_k s_k (MT-EditFlow section 4.1.1 / 4.2).

    (N, G, T) in {0, 1} -> (N, G), values in {0, 1/T, ..., 1}.
    """
    _check_per_turn(per_turn_success, "per_turn_success")
    _check_binary(per_turn_success, "per_turn_success")
    return per_turn_success.to(result_dtype(per_turn_success)).mean(dim=-1)


def fine_avg(per_turn_scores: Tensor, scale: tuple[float, float] = LIKERT_SCALE) -> Tensor:
    """Fine-grained Average: R_IF = (1/T) sum_k (score_k - lo) / (hi - lo) (MT-EditFlow
    section 4.2 and appendix B.2: average the per-turn Likert scores, normalise to [0, 1]).

    (N, G, T) raw scores on ``scale`` -> (N, G) in [0, 1]. Averaging then normalising equals
    normalising then averaging (the map is affine). Example: Likert [5, 3, 1] on (1, 5) ->
    (1 + 0.5 + 0) / 3 = 0.5.
    """
    _check_per_turn(per_turn_scores, "per_turn_scores")
    return normalize_scores(per_turn_scores, scale).mean(dim=-1)


def trajectory_if(
    per_turn_scores: Tensor,
    strategy: AggregationStrategy,
    *,
    scale: tuple[float, float] = LIKERT_SCALE,
) -> Tensor:
    """Trajectory IF reward R_IF under one of the three MT-EditFlow strategies (section 4.2).

    ``"binary_and"`` / ``"binary_avg"``: ``per_turn_scores`` are {0, 1} indicators and
    ``scale`` is ignored. ``"fine_avg"``: raw scores on ``scale``. (N, G, T) -> (N, G).
    """
    if strategy == "binary_and":
        return binary_and(per_turn_scores)
    if strategy == "binary_avg":
        return binary_avg(per_turn_scores)
    if strategy == "fine_avg":
        return fine_avg(per_turn_scores, scale)
    raise ValueError(f"unknown IF aggregation strategy {strategy!r}; expected one of {AGGREGATION_STRATEGIES}")


def trajectory_cc(per_turn_cc: Tensor) -> Tensor:
    """Trajectory CC reward R_CC = (1/T) sum_k CC(I_{k-1}, I_k) (MT-EditFlow appendix D,
    eqs. 12-16: EdiVal-CC on consecutive pairs ref->T1, T1->T2, T2->T3, averaged).

    (N, G, T) -> (N, G). Per-turn CC is a DINOv3 cosine-based similarity, so values must lie
    in [-1, 1] (a percent-scaled CC such as 90.2 is rejected).
    """
    _check_per_turn(per_turn_cc, "per_turn_cc")
    check_range(per_turn_cc, -1.0, 1.0, "per_turn_cc")
    return per_turn_cc.to(result_dtype(per_turn_cc)).mean(dim=-1)
