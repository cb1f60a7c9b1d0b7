"""Multi-turn reward design and group filtering (MT-EditFlow sections 4.1-4.5 and appendix D;
Edit-R1 section 2.3; DiffusionNFT reference advantages). Pure torch, no Ray.

Shape convention
----------------
A *group* is G trajectories (rollouts) of the same T-turn instruction chain (T = 3 in
MT-EditFlow) on the same reference image; a batch holds N groups.

* trajectory-level quantities (rewards R_IF, R_CC, advantages, masks): ``(N, G)``
  = ``(num_groups, group_size)``;
* per-turn quantities (judge scores s_k, per-turn CC, per-turn advantages): ``(N, G, T)``;
* per-turn, per-denoising-step advantages after broadcasting (eq. 8): ``(N, G, T, S)``;
* per-group quantities (filter keep flags, mu_g, sigma_g): ``(N,)``.

Pipeline (what the trainer calls, in order):
``trajectory_if`` + ``trajectory_cc`` -> ``group_filter`` (raw reward) ->
``fused_advantages`` -> ``broadcast_trajectory_advantage`` -> ``optimality_probability`` (NFT).
"""

from edit_rl.rewards.advantages import (
    StdMode,
    broadcast_trajectory_advantage,
    group_advantages,
    optimality_probability,
    per_turn_advantages,
)
from edit_rl.rewards.aggregation import (
    EDIT_R1_LOGIT_SCALE,
    LIKERT_SCALE,
    UNIT_SCALE,
    AggregationStrategy,
    binarize,
    binary_and,
    binary_avg,
    fine_avg,
    normalize_scores,
    trajectory_cc,
    trajectory_if,
)
from edit_rl.rewards.filtering import GroupFilterResult, PromptBanList, group_filter, group_mean_std
from edit_rl.rewards.fusion import (
    FusedAdvantages,
    FusionLevel,
    advantage_level_fusion,
    fused_advantages,
    reward_level_fusion,
    within_group_variance,
)

__all__ = [
    "EDIT_R1_LOGIT_SCALE",
    "LIKERT_SCALE",
    "UNIT_SCALE",
    "AggregationStrategy",
    "FusedAdvantages",
    "FusionLevel",
    "GroupFilterResult",
    "PromptBanList",
    "StdMode",
    "advantage_level_fusion",
    "binarize",
    "binary_and",
    "binary_avg",
    "broadcast_trajectory_advantage",
    "fine_avg",
    "fused_advantages",
    "group_advantages",
    "group_filter",
    "group_mean_std",
    "normalize_scores",
    "optimality_probability",
    "per_turn_advantages",
    "reward_level_fusion",
    "trajectory_cc",
    "trajectory_if",
    "within_group_variance",
]
