"""From complete groups to the learner's samples: one training sample per (trajectory, turn)
with its advantage and NFT optimality probability, the drop log, and the step's statistics.

Pipeline (docs/algorithms.md §3, §5, §6; the functions of ``edit_rl.rewards``):

1. NaN check: a group with any non-finite IF or CC score (NaN, or +-inf) is dropped whole with
   reason "nan score" and counted; it is never used, not even in the batch statistics below.
   A service's *fallback* scores (flagged per turn) are finite and are used; they are counted.
2. Trajectory rewards: R_IF = trajectory_if(per-turn IF) under ``reward.if_strategy`` (binary
   strategies first ``binarize`` at ``reward.binary_threshold``; fine_avg normalises from
   ``(reward.score_min, reward.score_max)``), R_CC = trajectory_cc(per-turn CC).
3. Edit-R1 group filter on the raw trajectory IF, which lies in [0, 1] for every strategy.
   Why not the fused reward: tau_mu = 0.9 and tau_sigma = 0.05 are calibrated for a [0, 1]
   reward (Edit-R1's normalised logit score); R_IF + lambda R_CC lives on [-lambda, 1 + lambda]
   so "mean < 0.9" would mean a different thing for each lambda, and advantage-level fusion
   has no fused raw reward at all. The filter's purpose is to skip groups whose *instruction
   following* has no signal (all fail / all succeed); CC varies little within a group
   (MT-EditFlow: IF's within-group variance is ~5.8x CC's) and must not keep a group alive.
   Banned prompts go into ``ban_list``.
4. Fused trajectory advantages over ALL scored groups (filtered ones included), then only the
   kept groups become samples. This is what the Edit-R1 reference does (its stat tracker sees
   every prompt of the epoch; the filter only sets ``valid_mask``), so with ``std_mode=global``
   the std is the whole batch's, and a kept group's advantages do not depend on the filter's
   thresholds. Filtered groups are removed instead of masked (no wasted forward passes).
5. Per-turn advantages. ``broadcast`` (the method, MT-EditFlow eq. 8): the trajectory advantage
   on every turn and every one of the ``num_steps_per_turn`` denoising steps. ``per_turn``
   (ablation): each turn k is scored by its own per-turn rewards against turn k of the group
   (``per_turn_advantages``), fused at the same level as the trajectory advantage: advantage
   level A_k = A(IF_k) + lambda A(CC_k), reward level A_k = A(IF_k + lambda CC_k); IF_k is the
   normalised score (fine_avg) or the binarised success (binary strategies; for binary_and this
   is s_k itself, not a running AND).
6. r = optimality_probability(A, adv_clip_max) (DiffusionNFT); GRPO learners ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from edit_rl.buffer.records import DroppedGroup, TrajectoryGroup
from edit_rl.config.schema import FilterConfig, RewardConfig
from edit_rl.rewards import (
    FusedAdvantages,
    PromptBanList,
    advantage_level_fusion,
    binarize,
    broadcast_trajectory_advantage,
    fused_advantages,
    group_filter,
    normalize_scores,
    optimality_probability,
    per_turn_advantages,
    reward_level_fusion,
    trajectory_cc,
    trajectory_if,
)
from edit_rl.rewards.advantages import DEFAULT_ADV_CLIP

NAN_SCORE = "nan score"


@dataclass(frozen=True)
class TrainingSample:
    """One (trajectory, turn) the learner trains on. ``advantage`` applies to every denoising
    step of the turn (broadcast); ``r`` is its NFT optimality probability. ``weight`` is 1 for
    a real sample and 0 for the padding copies :func:`shard_samples` adds (the loss's mask)."""

    rollout_id: str
    chain_id: str
    step: int
    slot: int
    turn: int
    payload: Any
    advantage: float
    r: float
    policy_version: int
    weight: float = 1.0


@dataclass(frozen=True)
class BatchStats:
    """What a run logs per step about the batch. Means are over the scored (finite) groups;
    None where there is nothing to average. ``kept_fraction`` = kept / all groups given
    (NaN-dropped included); ``zero_std_ratio`` and ``mean_group_std`` are the filter's, over
    the scored groups, on raw trajectory IF. Staleness = current version - policy_version of
    the trajectories that train. ``fused`` = FusedAdvantages.stats() (empty if nothing scored)."""

    num_groups: int
    num_scored_groups: int
    num_kept_groups: int
    num_nan_groups: int
    num_filtered_groups: int
    num_samples: int
    kept_fraction: float
    zero_std_ratio: Optional[float]
    mean_group_std: Optional[float]
    if_turn_mean: tuple[float, ...]  # judge's raw scale, one per turn
    cc_turn_mean: tuple[float, ...]
    r_if_mean: Optional[float]
    r_cc_mean: Optional[float]
    fused: dict[str, float]
    num_banned_new: int
    num_banned_total: int
    if_fallback_turns: int
    cc_fallback_turns: int
    staleness_max: Optional[int]
    staleness_mean: Optional[float]

    def metrics(self) -> dict[str, Any]:
        """Nested record for the metrics logger (None values are skipped when flattened)."""
        return {
            "reward": {"if_turn": list(self.if_turn_mean), "cc_turn": list(self.cc_turn_mean),
                       "if": self.r_if_mean, "cc": self.r_cc_mean},
            "adv": dict(self.fused),
            "filter": {"kept_fraction": self.kept_fraction, "zero_std_ratio": self.zero_std_ratio,
                       "mean_group_std": self.mean_group_std, "groups": self.num_groups,
                       "kept_groups": self.num_kept_groups, "nan_groups": self.num_nan_groups,
                       "filtered_groups": self.num_filtered_groups, "banned_new": self.num_banned_new,
                       "banned_total": self.num_banned_total},
            "fallback": {"if_turns": self.if_fallback_turns, "cc_turns": self.cc_fallback_turns},
            "staleness": {"max": self.staleness_max, "mean": self.staleness_mean},
            "samples": self.num_samples,
        }


@dataclass(frozen=True)
class TrainingBatch:
    """Samples ordered by group (as given), slot, turn; the drop log; new bans; statistics."""

    samples: tuple[TrainingSample, ...]
    dropped: tuple[DroppedGroup, ...]
    banned_chain_ids: tuple[str, ...]
    stats: BatchStats
    num_steps_per_turn: int


def build_training_batch(
    groups: Sequence[TrajectoryGroup],
    reward_cfg: RewardConfig,
    filter_cfg: FilterConfig,
    ban_list: PromptBanList,
    *,
    num_steps_per_turn: int,
    policy_version: int,
    adv_clip_max: float = DEFAULT_ADV_CLIP,
) -> TrainingBatch:
    """Scores of complete groups -> training samples (pipeline in the module docstring).

    ``policy_version`` is the learner's current version (for staleness); ``adv_clip_max`` is
    the NFT C of r (``objective.nft.adv_clip_max``). Updates ``ban_list``. Raises ValueError
    for groups of unequal size or turn count, a score outside its scale, or a trajectory
    sampled by a version newer than ``policy_version``.
    """
    if num_steps_per_turn < 1:
        raise ValueError(f"num_steps_per_turn must be >= 1, got {num_steps_per_turn}")
    _, num_turns = _check_shapes(groups)
    for t in (t for g in groups for t in g.trajectories):
        if t.rollout.policy_version > policy_version:
            raise ValueError(f"rollout {t.rollout.rollout_id!r} was sampled by policy version "
                             f"{t.rollout.policy_version}, newer than the current {policy_version}")
    if_fallbacks = sum(t.if_scores.num_fallbacks for g in groups for t in g.trajectories)
    cc_fallbacks = sum(t.cc_scores.num_fallbacks for g in groups for t in g.trajectories)

    dropped: list[DroppedGroup] = []
    scored: list[TrajectoryGroup] = []
    for g in groups:
        bad = [f"{t.rollout.rollout_id} ({kind})" for t in g.trajectories
               for kind, s in (("IF", t.if_scores), ("CC", t.cc_scores)) if not s.all_finite]
        if bad:
            dropped.append(DroppedGroup(g.step, g.chain_id, NAN_SCORE, "non-finite scores: " + ", ".join(bad)))
        else:
            scored.append(g)
    num_nan = len(dropped)

    common = dict(num_groups=len(groups), num_scored_groups=len(scored), num_nan_groups=num_nan,
                  if_fallback_turns=if_fallbacks, cc_fallback_turns=cc_fallbacks)
    if not scored:
        stats = BatchStats(**common, num_kept_groups=0, num_filtered_groups=0, num_samples=0, kept_fraction=0.0,
                           zero_std_ratio=None, mean_group_std=None, if_turn_mean=(), cc_turn_mean=(),
                           r_if_mean=None, r_cc_mean=None, fused={}, num_banned_new=0,
                           num_banned_total=len(ban_list), staleness_max=None, staleness_mean=None)
        return TrainingBatch((), tuple(dropped), (), stats, num_steps_per_turn)

    if_raw = _per_turn_tensor(scored, "if")  # (N, G, T)
    cc = _per_turn_tensor(scored, "cc")
    rewards = group_rewards(if_raw, cc, reward_cfg)
    r_if, r_cc, fused, adv = rewards.r_if, rewards.r_cc, rewards.fused, rewards.advantages

    chain_ids = [g.chain_id for g in scored]
    filt = group_filter(r_if, chain_ids, tau_mu=filter_cfg.tau_mu, tau_sigma=filter_cfg.tau_sigma,
                        enabled=filter_cfg.enabled)
    num_banned_new = ban_list.update(filt)
    banned = set(filt.banned_prompt_ids)

    r = optimality_probability(adv, clip=adv_clip_max)

    samples: list[TrainingSample] = []
    for n, g in enumerate(scored):
        if not bool(filt.group_keep[n]):
            mu, sigma = float(filt.group_mean[n]), float(filt.group_std[n])
            dropped.append(DroppedGroup(g.step, g.chain_id, _filter_reason(mu, sigma, filter_cfg),
                                        _filter_detail(mu, sigma, filter_cfg, g.chain_id in banned), mu, sigma))
            continue
        for i, t in enumerate(g.trajectories):
            ro = t.rollout
            for k in range(num_turns):
                samples.append(TrainingSample(ro.rollout_id, ro.chain_id, ro.step, ro.slot, k, ro.payloads[k],
                                              float(adv[n, i, k]), float(r[n, i, k]), ro.policy_version))

    staleness = [policy_version - s.policy_version for s in samples[::num_turns]]
    num_kept = int(filt.group_keep.sum())
    stats = BatchStats(
        **common,
        num_kept_groups=num_kept,
        num_filtered_groups=len(scored) - num_kept,
        num_samples=len(samples),
        kept_fraction=num_kept / len(groups),
        zero_std_ratio=filt.zero_std_ratio,
        mean_group_std=filt.mean_group_std,
        if_turn_mean=tuple(if_raw.mean(dim=(0, 1)).tolist()),
        cc_turn_mean=tuple(cc.mean(dim=(0, 1)).tolist()),
        r_if_mean=float(r_if.mean()),
        r_cc_mean=float(r_cc.mean()),
        fused=fused.stats(),
        num_banned_new=num_banned_new,
        num_banned_total=len(ban_list),
        staleness_max=max(staleness) if staleness else None,
        staleness_mean=sum(staleness) / len(staleness) if staleness else None,
    )
    return TrainingBatch(tuple(samples), tuple(dropped), tuple(filt.banned_prompt_ids), stats, num_steps_per_turn)


@dataclass(frozen=True)
class GroupRewards:
    """A batch of groups' rewards and advantages: trajectory IF and CC rewards (N, G), the fusion's
    result and statistics, and the per-turn advantage of every sample (N, G, T)."""

    r_if: Tensor
    r_cc: Tensor
    fused: FusedAdvantages
    advantages: Tensor


def group_rewards(if_raw: Tensor, cc: Tensor, reward_cfg: RewardConfig) -> GroupRewards:
    """Per-turn IF scores on the judge's scale and CC in [0, 1], both (N, G, T) -> trajectory
    rewards, fused advantages and per-turn advantages (docs/algorithms.md §5): IF aggregated by
    ``reward.if_strategy`` (binary strategies on scores >= ``binary_threshold``), fused with CC at
    ``reward.fusion``'s level, and either the trajectory advantage broadcast to every turn
    (``advantage_mode`` "broadcast", MT-EditFlow) or per-turn advantages (the ablation)."""
    scale = (reward_cfg.score_min, reward_cfg.score_max)
    binary = reward_cfg.if_strategy != "fine_avg"
    if_turn = binarize(if_raw, reward_cfg.binary_threshold) if binary else if_raw
    r_if = trajectory_if(if_turn, reward_cfg.if_strategy, scale=scale)
    r_cc = trajectory_cc(cc)
    fused = fused_advantages(r_if, r_cc, level=reward_cfg.fusion, cc_weight=reward_cfg.cc_weight,
                             std_mode=reward_cfg.std_mode, eps=reward_cfg.adv_eps)
    if reward_cfg.advantage_mode == "broadcast":
        adv = broadcast_trajectory_advantage(fused.advantages, if_raw.shape[-1], 1)[..., 0]
    else:
        if_reward_turn = if_turn if binary else normalize_scores(if_raw, scale)
        adv = _per_turn_fused(if_reward_turn, cc, reward_cfg)
    return GroupRewards(r_if, r_cc, fused, adv)


def _check_shapes(groups: Sequence[TrajectoryGroup]) -> tuple[int, int]:
    """(G, T) shared by every group; raise unless all groups have G >= 1 trajectories and every
    trajectory has T payloads, T IF and T CC scores (advantages need an (N, G, T) grid)."""
    sizes = {len(g.trajectories) for g in groups}
    turns = {n for g in groups for t in g.trajectories
             for n in (len(t.rollout.payloads), len(t.if_scores.values), len(t.cc_scores.values))}
    if len(sizes) > 1 or 0 in sizes or len(turns) > 1:
        raise ValueError(f"groups must all have the same G >= 1 trajectories of the same T turns (payloads, "
                         f"IF and CC scores); got group sizes {sorted(sizes)}, turn counts {sorted(turns)}")
    return (sizes.pop() if sizes else 0, turns.pop() if turns else 0)


def _per_turn_tensor(groups: Sequence[TrajectoryGroup], kind: str) -> Tensor:
    return torch.tensor([[(t.if_scores if kind == "if" else t.cc_scores).values for t in g.trajectories]
                         for g in groups], dtype=torch.float64)


def _per_turn_fused(if_turn: Tensor, cc_turn: Tensor, cfg: RewardConfig) -> Tensor:
    """Per-turn ablation advantages (N, G, T), fused at ``cfg.fusion``'s level."""
    kwargs = dict(std_mode=cfg.std_mode, eps=cfg.adv_eps)
    if cfg.fusion == "advantage":
        return advantage_level_fusion(per_turn_advantages(if_turn, **kwargs),
                                      per_turn_advantages(cc_turn, **kwargs), cfg.cc_weight)
    return per_turn_advantages(reward_level_fusion(if_turn, cc_turn, cfg.cc_weight), **kwargs)


def _filter_reason(mu: float, sigma: float, cfg: FilterConfig) -> str:
    """Why the filter (keep iff sigma > tau_sigma and mu < tau_mu) dropped a group."""
    why = []
    if not sigma > cfg.tau_sigma:
        why.append("std <= tau_sigma")
    if not mu < cfg.tau_mu:
        why.append("mean >= tau_mu")
    return "filter: " + ", ".join(why)


def _filter_detail(mu: float, sigma: float, cfg: FilterConfig, banned: bool) -> str:
    text = f"mu={mu:.4f}, sigma={sigma:.4f} (tau_mu={cfg.tau_mu}, tau_sigma={cfg.tau_sigma})"
    return text + "; prompt banned" if banned else text

