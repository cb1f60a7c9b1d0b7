"""Flow-GRPO objective: PPO-style clipped surrogate on SDE-step log-probabilities.

Sources
  * Flow-GRPO (Liu et al. 2025); reference code yifan123/flow_grpo ``scripts/train_sd3.py``
    and ``scripts/train_flux_kontext.py`` ("grpo logic" block, identical in both).
  * MT-EditFlow (Huang et al. 2025; docs/algorithms.md §4) eq. 4 (single turn) and
    eqs. 20-22 (multi-turn; the trajectory advantage is broadcast to every turn and step).

The log-probabilities (one per sample, averaged over the latent's elements) and the
SDE-step means/std come from the sampler (``edit_rl/flow``); this module only takes tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from edit_rl.objectives._reduce import (
    batch_size_of,
    check_same_shape,
    masked_mean,
    mean_over_non_batch,
    per_sample_vector,
    sample_mask,
)


@dataclass(frozen=True)
class GRPODiagnostics:
    """Detached 0-d tensors a run logs (reference ``info``). Means are over the samples the
    mask keeps (all samples without a mask); every field is 0 if the mask keeps none."""

    clip_frac: Tensor
    """fraction with |ratio - 1| > clip_range (reference ``clipfrac``)."""
    clip_frac_high: Tensor
    """fraction with ratio - 1 > clip_range (``clipfrac_gt_one``)."""
    clip_frac_low: Tensor
    """fraction with 1 - ratio > clip_range (``clipfrac_lt_one``)."""
    approx_kl: Tensor
    """0.5 * mean((logp - logp_old)^2) (``approx_kl``)."""
    ratio_mean: Tensor
    """mean importance ratio."""
    kl_div: Tensor
    """mean ||mu - mu_ref||^2 / (2 std^2) before kl_beta; 0 when the means are not given."""
    advantage_mean: Tensor
    """mean clipped advantage."""
    num_samples: Tensor
    """number (sum of mask weights) of samples that count."""

    def metrics(self) -> dict[str, float]:
        """The diagnostics as Python floats (one host sync per field), for a logger."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class GRPOLoss:
    """Result of :func:`grpo_loss`: ``total = policy + kl``, all three with the graph."""

    total: Tensor
    policy: Tensor
    kl: Tensor
    """kl_beta * mean KL; a constant 0 when kl_beta == 0 and no means are given."""
    diagnostics: GRPODiagnostics


def importance_ratio(log_prob: Tensor, old_log_prob: Tensor) -> Tensor:
    """Step-wise importance ratio rho = exp(log p_theta - sg(log p_old)) (MT-EditFlow eq. 22;
    ``ratio`` in yifan123/flow_grpo ``scripts/train_sd3.py``)."""
    return torch.exp(log_prob - old_log_prob.detach())


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_range: float) -> Tensor:
    """Per-sample PPO clipped loss (the negated clipped surrogate, MT-EditFlow eqs. 4 / 21):

        l = max(-A rho, -A clip(rho, 1 - eps, 1 + eps))

    Reference: ``unclipped_loss`` / ``clipped_loss`` / ``torch.maximum`` in
    yifan123/flow_grpo ``scripts/train_sd3.py``. ``advantages`` are used as given (clip them
    first) and carry no gradient. Where the clipped branch is taken the gradient is 0.
    """
    adv = advantages.detach()
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return torch.maximum(unclipped, clipped)


def gaussian_mean_kl(mean: Tensor, ref_mean: Tensor, std: Tensor | float) -> Tensor:
    """Per-sample KL between two Gaussians of equal std that differ in mean only:

        KL = mean(||mu_theta - sg(mu_ref)||^2) / (2 std^2)     (mean over non-batch dims)

    ``std`` is per sample ((B,), (B, 1, ..., 1)) or one number. Flow-GRPO passes the SDE's
    ``std_dev_t`` = a sqrt(sigma / (1 - sigma)) here -- not the transition std
    ``std_dev_t * sqrt(-dt)`` -- so its KL is the exact one scaled by 1 / (-dt). Reference:
    ``kl_loss`` in yifan123/flow_grpo ``scripts/train_sd3.py`` (mean over dims (1, 2, 3);
    over (1, 2) for packed FLUX tokens in ``scripts/train_flux_kontext.py``).
    """
    check_same_shape(mean, "mean", ref_mean=ref_mean)
    batch = batch_size_of(mean, "mean")
    s = per_sample_vector(std, batch, "std", mean)
    return mean_over_non_batch((mean - ref_mean.detach()) ** 2) / (2.0 * s.detach() ** 2)


def grpo_loss(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    *,
    clip_range: float = 1e-4,
    adv_clip_max: float = 5.0,
    mean: Tensor | None = None,
    ref_mean: Tensor | None = None,
    std: Tensor | float | None = None,
    kl_beta: float = 0.0,
    mask: Tensor | None = None,
) -> GRPOLoss:
    """Flow-GRPO loss for one denoising step of a batch (MT-EditFlow eq. 4 / eqs. 20-22):

        rho    = exp(log_prob - sg(old_log_prob))
        A      = clip(advantages, -adv_clip_max, adv_clip_max)
        policy = mean_b max(-A rho, -A clip(rho, 1 - clip_range, 1 + clip_range))
        kl     = kl_beta * mean_b[mean(||mean - ref_mean||^2) / (2 std^2)]
        total  = policy + kl

    Reference: yifan123/flow_grpo ``scripts/train_sd3.py`` ("grpo logic"; ``config.train.beta``
    is our ``kl_beta``, ``clip_range`` 1e-4 by default, 1e-5 for the "fast" configs).

    Args:
        log_prob: (B,) log-density of the rollout's next latent under the trained policy
            (with graph; flow_grpo averages it over the latent's elements, float32).
        old_log_prob: (B,) the same under the rollout policy, recorded at sampling time.
        advantages: (B,) advantages (broadcast trajectory advantage for this step).
        clip_range: PPO epsilon.
        adv_clip_max: advantages are clipped to +-adv_clip_max.
        mean, ref_mean: (B, ...) SDE-step means mu_theta (with graph) and mu_ref (reference
            model, LoRA disabled). Required when kl_beta > 0; if given with kl_beta == 0 the
            KL is still reported in the diagnostics.
        std: the SDE std used in the KL, per sample or one number (see
            :func:`gaussian_mean_kl`). Required with the means.
        kl_beta: weight of the KL term (flow_grpo ``train.beta``; 0 disables it).
        mask: (B,) bool / 0-1 sample mask or None; batch means become
            sum(x * mask) / sum(mask). Masked samples get exactly zero gradient; a mask that
            keeps nothing gives exact-zero losses that still carry a graph (no NaN).
            (flow_grpo instead drops zero-advantage samples before batching, see
            :func:`nonzero_advantage_mask`.)
    """
    batch = batch_size_of(log_prob, "log_prob")
    if log_prob.ndim != 1:
        raise ValueError(f"log_prob must be (B,), got shape {tuple(log_prob.shape)}")
    check_same_shape(log_prob, "log_prob", old_log_prob=old_log_prob, advantages=advantages)
    if clip_range < 0:
        raise ValueError(f"clip_range must be >= 0, got {clip_range}")
    if adv_clip_max <= 0:
        raise ValueError(f"adv_clip_max must be > 0, got {adv_clip_max}")
    if kl_beta < 0:
        raise ValueError(f"kl_beta must be >= 0, got {kl_beta}")
    have_means = mean is not None or ref_mean is not None
    if have_means and (mean is None or ref_mean is None or std is None):
        raise ValueError("mean, ref_mean and std must be given together")
    if kl_beta > 0 and not have_means:
        raise ValueError("kl_beta > 0 needs mean, ref_mean and std")
    m = sample_mask(mask, batch, log_prob)

    adv = torch.clamp(advantages.detach(), -adv_clip_max, adv_clip_max)
    ratio = importance_ratio(log_prob, old_log_prob)
    policy = masked_mean(clipped_surrogate(ratio, adv, clip_range), m)

    if have_means:
        assert mean is not None and ref_mean is not None and std is not None
        if batch_size_of(mean, "mean") != batch:
            raise ValueError(f"mean has batch {mean.shape[0]} but log_prob has {batch}")
        kl_div = masked_mean(gaussian_mean_kl(mean, ref_mean, std), m)
        kl = kl_beta * kl_div
    else:
        kl_div = torch.zeros((), dtype=policy.dtype, device=policy.device)
        kl = kl_div
    total = policy + kl

    with torch.no_grad():
        r = ratio.detach()
        delta = log_prob.detach() - old_log_prob.detach()
        as_float = r.dtype
        diagnostics = GRPODiagnostics(
            clip_frac=masked_mean(((r - 1.0).abs() > clip_range).to(as_float), m),
            clip_frac_high=masked_mean((r - 1.0 > clip_range).to(as_float), m),
            clip_frac_low=masked_mean((1.0 - r > clip_range).to(as_float), m),
            approx_kl=0.5 * masked_mean(delta**2, m),
            ratio_mean=masked_mean(r, m),
            kl_div=kl_div.detach(),
            advantage_mean=masked_mean(adv.to(as_float), m),
            num_samples=(
                torch.tensor(float(batch), device=log_prob.device)
                if m is None
                else m.to(torch.float32).sum()
            ),
        )
    return GRPOLoss(total=total, policy=policy, kl=kl, diagnostics=diagnostics)


def grpo_train_step_indices(num_steps: int, fraction: float = 0.99) -> list[int]:
    """Denoising-step indices Flow-GRPO trains on: 0, 1, ..., int(num_steps * fraction) - 1.

    With the configs' fraction 0.99 this is every step but the last (T = 10 -> 0..8,
    T = 6 -> 0..4); fraction 1.0 (flow_grpo ``base.py`` default) trains all steps. The same
    steps for every sample, in order. Reference: ``num_train_timesteps`` and
    ``train_timesteps = range(num_train_timesteps)`` in yifan123/flow_grpo
    ``scripts/train_sd3.py``. Deviation: at least one step (the reference would train on
    none when num_steps * fraction < 1, e.g. T = 1).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return list(range(max(1, int(num_steps * fraction))))


def nonzero_advantage_mask(advantages: Tensor) -> Tensor:
    """(B,) bool: True for samples with any non-zero advantage.

    ``advantages`` is (B,) or (B, T) (per-step advantages); a sample is dropped only if all
    its advantages are exactly 0 (reference: ``mask = advantages.abs().sum(dim=1) != 0`` in
    yifan123/flow_grpo ``scripts/train_sd3.py``). The reference then re-admits random
    dropped samples so the kept count divides the number of batches; that batching step
    belongs to the caller.
    """
    batch_size_of(advantages, "advantages")
    a = advantages.detach()
    if a.ndim > 1:
        a = a.flatten(start_dim=1).abs().sum(dim=1)
    return a != 0
