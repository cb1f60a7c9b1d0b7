"""Group-relative advantages, the NFT optimality probability, and turn/step broadcasting.

Trajectory rewards are (N, G): N groups, G rollouts of the same instruction chain each.
Statistics are computed in float64; outputs keep the input's floating dtype.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from edit_rl.rewards._validation import as_float64, check_finite, check_ndim, result_dtype

StdMode = Literal["global", "group"]
STD_MODES: tuple[str, ...] = get_args(StdMode)

DEFAULT_ADV_EPS: float = 1e-4
"""DiffusionNFT / Flow-GRPO reference: A = (R - mean) / (std + 1e-4)."""

DEFAULT_ADV_CLIP: float = 5.0
"""DiffusionNFT reference ``adv_clip_max`` = 5."""


def group_advantages(
    rewards: Tensor, std_mode: StdMode = "global", eps: float = DEFAULT_ADV_EPS
) -> Tensor:
    """Group-relative advantage A_i = (R_i - mean_group(R)) / (std + eps)
    (MT-EditFlow eq. 3; DiffusionNFT reference ``PerPromptStatTracker``).

    The mean is always the mean of the rollout's own group (over G). The std is the
    population std (``unbiased=False``, like ``np.std``):

    * ``"global"`` (default, DiffusionNFT reference ``global_std=True``): std of all N*G
      rewards of the batch around the batch mean -- one number for the whole batch.
    * ``"group"``: each group's own std over its G rewards (eq. 3 as written).

    (N, G) -> (N, G). A group whose rewards are all equal gets A = 0.
    """
    check_ndim(rewards, 2, "rewards", "(num_groups, group_size)")
    check_finite(rewards, "rewards")
    if std_mode not in STD_MODES:
        raise ValueError(f"unknown std_mode {std_mode!r}; expected one of {STD_MODES}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    r = as_float64(rewards)
    centred = r - r.mean(dim=1, keepdim=True)
    if std_mode == "global":
        std = r.std(unbiased=False)
    else:
        std = r.std(dim=1, unbiased=False, keepdim=True)
    return (centred / (std + eps)).to(result_dtype(rewards))


def optimality_probability(adv: Tensor, clip: float = DEFAULT_ADV_CLIP) -> Tensor:
    """DiffusionNFT optimality probability r = clamp(clip(A, -C, C) / C / 2 + 1/2, 0, 1)
    (DiffusionNFT reference ``train_nft_sd3.py``; Edit-R1 eq. 7 with Z_c = C * std).

    Any shape. A = -C -> 0, A = 0 -> 0.5, A = C -> 1; beyond +-C saturates.
    """
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    check_finite(adv, "adv")
    clipped = adv.clamp(-clip, clip)
    return (clipped / clip / 2.0 + 0.5).clamp(0.0, 1.0)


def broadcast_trajectory_advantage(adv: Tensor, num_turns: int, num_steps: int) -> Tensor:
    """Trajectory-level advantage broadcasting A_{i,k,t} = A_i (MT-EditFlow eq. 8, appendix D).

    The same trajectory advantage is given to every turn k and every denoising step t of
    trajectory i. (N, G) -> (N, G, T, S), returned as a contiguous copy (not a view).
    """
    check_ndim(adv, 2, "adv", "(num_groups, group_size)")
    if num_turns < 1 or num_steps < 1:
        raise ValueError(f"num_turns and num_steps must be >= 1, got {num_turns}, {num_steps}")
    n, g = adv.shape
    return adv[:, :, None, None].expand(n, g, num_turns, num_steps).contiguous()


def per_turn_advantages(
    per_turn_rewards: Tensor, std_mode: StdMode = "global", eps: float = DEFAULT_ADV_EPS
) -> Tensor:
    """Ablation (not in the paper's method): independent per-turn group advantages,
    A_{i,k} = (R_{i,k} - mean_{j in group} R_{j,k}) / (std_k + eps), for each turn k.

    Instead of broadcasting one trajectory advantage (eq. 8), turn k of rollout i is scored
    only by its own turn reward R_{i,k}, compared against turn k of the other G-1 rollouts
    of the same group. This is :func:`group_advantages` applied separately to each turn's
    (N, G) slice, so std is:

    * ``"global"``: population std of all N*G turn-k rewards (one number per turn);
    * ``"group"``: population std of the G turn-k rewards of that group.

    Turns never share statistics, and a turn is credited regardless of what later turns did.
    (N, G, T) -> (N, G, T); pad with the step axis via ``[..., None]`` when needed.
    """
    check_ndim(per_turn_rewards, 3, "per_turn_rewards", "(num_groups, group_size, num_turns)")
    turns = [
        group_advantages(per_turn_rewards[:, :, k], std_mode=std_mode, eps=eps)
        for k in range(per_turn_rewards.shape[2])
    ]
    return torch.stack(turns, dim=2)
