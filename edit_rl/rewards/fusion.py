"""Fusing the IF and CC rewards into one trajectory advantage (MT-EditFlow sections 4.1.4, 4.4,
appendix D eqs. 17-19). Entry point for the trainer: :func:`fused_advantages`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal, get_args

from torch import Tensor

from edit_rl.rewards._validation import as_float64, check_finite, check_ndim
from edit_rl.rewards.advantages import DEFAULT_ADV_EPS, StdMode, group_advantages

FusionLevel = Literal["advantage", "reward"]
FUSION_LEVELS: tuple[str, ...] = get_args(FusionLevel)

_TRAJ = "(num_groups, group_size)"


@dataclass(frozen=True)
class FusedAdvantages:
    """Fused trajectory advantage (N, G) and the statistics a run logs each step.

    ``*_within_group_var``: mean over groups of the population variance of the RAW reward
    inside each group (MT-EditFlow appendix E.1 reports IF's as ~5.8x CC's);
    ``if_cc_var_ratio`` = IF / CC (inf if only CC's is 0, nan if both are 0).
    """

    advantages: Tensor
    level: str
    cc_weight: float
    if_adv_mean: float
    if_adv_std: float
    cc_adv_mean: float
    cc_adv_std: float
    adv_mean: float
    adv_std: float
    if_within_group_var: float
    cc_within_group_var: float
    if_cc_var_ratio: float

    def stats(self) -> dict[str, float]:
        """Scalar statistics for logging (everything but the tensor and the level name)."""
        skip = {"advantages", "level"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}


def reward_level_fusion(r_if: Tensor, r_cc: Tensor, cc_weight: float) -> Tensor:
    """Reward-level fusion R = R_IF + lambda * R_CC (MT-EditFlow eq. 6 / appendix eq. 17).

    The fused reward then gets ONE group advantage (see :func:`fused_advantages`).
    """
    return r_if + cc_weight * r_cc


def advantage_level_fusion(a_if: Tensor, a_cc: Tensor, cc_weight: float) -> Tensor:
    """Advantage-level fusion A = A_IF + lambda * A_CC (MT-EditFlow eq. 7 / appendix eq. 19),
    where A_IF and A_CC are each a group-relative advantage of their own reward (eq. 18).
    """
    return a_if + cc_weight * a_cc


def within_group_variance(rewards: Tensor) -> float:
    """Mean over groups of Var_pop(R within group) (MT-EditFlow appendix E.1, Fig. 10). (N, G) -> scalar."""
    check_ndim(rewards, 2, "rewards", _TRAJ)
    return float(as_float64(rewards).var(dim=1, unbiased=False).mean())


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def _mean_std(x: Tensor) -> tuple[float, float]:
    x64 = as_float64(x)
    return float(x64.mean()), float(x64.std(unbiased=False))


def fused_advantages(
    r_if: Tensor,
    r_cc: Tensor,
    *,
    level: FusionLevel = "advantage",
    cc_weight: float,
    std_mode: StdMode = "global",
    eps: float = DEFAULT_ADV_EPS,
) -> FusedAdvantages:
    """Trajectory advantage from IF and CC rewards, fused at the reward or advantage level.

    * ``level="advantage"`` (paper's method, section 4.4): A = A_IF + lambda A_CC with
      A_IF = group_advantages(R_IF), A_CC = group_advantages(R_CC) (eqs. 7, 18, 19). Each
      component is standardised by its own std, so the scale of R_CC does not matter.
    * ``level="reward"`` (eq. 6 / 17): A = group_advantages(R_IF + lambda R_CC); the
      component with the larger within-group variance dominates.

    ``std_mode`` / ``eps`` are passed to :func:`group_advantages` for every advantage
    computed here. The paper writes eq. 3 with the group std; the default here is
    ``"global"`` to match the DiffusionNFT reference trainer (the paper has no code).
    A_IF and A_CC are computed in both levels, for logging. (N, G) x 2 -> (N, G).
    """
    check_ndim(r_if, 2, "r_if", _TRAJ)
    check_ndim(r_cc, 2, "r_cc", _TRAJ)
    if r_if.shape != r_cc.shape:
        raise ValueError(f"r_if and r_cc shapes differ: {tuple(r_if.shape)} vs {tuple(r_cc.shape)}")
    check_finite(r_if, "r_if")
    check_finite(r_cc, "r_cc")
    if level not in FUSION_LEVELS:
        raise ValueError(f"unknown fusion level {level!r}; expected one of {FUSION_LEVELS}")
    if not (cc_weight >= 0 and math.isfinite(cc_weight)):
        raise ValueError(f"cc_weight (lambda) must be finite and >= 0, got {cc_weight}")

    a_if = group_advantages(r_if, std_mode=std_mode, eps=eps)
    a_cc = group_advantages(r_cc, std_mode=std_mode, eps=eps)
    if level == "advantage":
        adv = advantage_level_fusion(a_if, a_cc, cc_weight)
    else:
        adv = group_advantages(reward_level_fusion(r_if, r_cc, cc_weight), std_mode=std_mode, eps=eps)

    if_mean, if_std = _mean_std(a_if)
    cc_mean, cc_std = _mean_std(a_cc)
    adv_mean, adv_std = _mean_std(adv)
    var_if = within_group_variance(r_if)
    var_cc = within_group_variance(r_cc)
    return FusedAdvantages(
        advantages=adv,
        level=level,
        cc_weight=float(cc_weight),
        if_adv_mean=if_mean,
        if_adv_std=if_std,
        cc_adv_mean=cc_mean,
        cc_adv_std=cc_std,
        adv_mean=adv_mean,
        adv_std=adv_std,
        if_within_group_var=var_if,
        cc_within_group_var=var_cc,
        if_cc_var_ratio=_ratio(var_if, var_cc),
    )
