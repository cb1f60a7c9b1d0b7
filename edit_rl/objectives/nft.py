"""DiffusionNFT objective: implicit positive/negative policies, x0-space adaptive loss.

Sources
  * DiffusionNFT (Zheng et al. 2025, arXiv:2509.16117); reference code NVlabs/DiffusionNFT
    ``scripts/train_nft_sd3.py`` (training loop, "adaptive weighting" block).
  * Edit-R1 (PKU-YuanGroup/Edit-R1 ``scripts/train_nft_kontext.py``): same loss for
    FLUX.1-Kontext plus a per-sample ``valid_mask`` (low-std group filter).
  * MT-EditFlow (Huang et al. 2025; docs/algorithms.md §3) eq. 5 (single turn) and
    eqs. 23-25 (multi-turn; the trajectory advantage is broadcast to every turn and step).

Conventions: t in [0, 1], t = 1 is noise; x_t = (1 - t) x0 + t eps; v = eps - x0;
x0_hat = x_t - t v. ``sg`` = stop-gradient. Tensors are (B, ...) with the batch first.

The papers write the loss in velocity space, r ||v+ - v||^2 + (1 - r) ||v- - v||^2. The
reference code trains the equivalent x0-space form, since x0_hat - x0 = t (v - v_pred),
divided by a per-sample adaptive weight; this module implements the code's form.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from edit_rl.objectives._reduce import (
    batch_size_of,
    broadcast_per_sample,
    check_same_shape,
    masked_mean,
    mean_over_non_batch,
    per_sample_vector,
    sample_mask,
)
from edit_rl.objectives.old_policy import ema_decay, old_policy_decay, soft_update_

__all__ = [
    "ADAPTIVE_WEIGHT_MIN",
    "NFTDiagnostics",
    "NFTLoss",
    "ema_decay",  # re-exported from old_policy (part of the NFT recipe)
    "nft_adaptive_weight",
    "nft_implicit_velocities",
    "nft_loss",
    "nft_timestep_indices",
    "nft_x0_loss",
    "old_policy_decay",  # re-exported from old_policy
    "soft_update_",  # re-exported from old_policy
    "velocity_kl",
    "x0_prediction",
]

ADAPTIVE_WEIGHT_MIN: float = 1e-5
"""Lower clip of the adaptive weight (reference ``.clip(min=0.00001)``)."""


@dataclass(frozen=True)
class NFTDiagnostics:
    """Detached 0-d tensors a run logs (reference ``loss_terms``). Means are over the samples
    the mask keeps (all samples without a mask); every field is 0 if the mask keeps none."""

    positive_loss: Tensor
    """mean L+ (x0-space positive loss, adaptive-weighted)."""
    negative_loss: Tensor
    """mean L- (x0-space negative loss, adaptive-weighted)."""
    unweighted_policy: Tensor
    """mean (r L+ + (1 - r) L-) / beta, before the adv_clip_max scale (reference
    ``unweighted_policy_loss``)."""
    kl_div: Tensor
    """mean ||v_theta - v_ref||^2 (mean over elements); 0 when no v_ref is given."""
    old_deviation: Tensor
    """mean (v_theta - v_old)^2 (reference ``old_deviate``)."""
    positive_weight: Tensor
    """mean adaptive weight w+ (float64)."""
    negative_weight: Tensor
    """mean adaptive weight w- (float64)."""
    r_mean: Tensor
    """mean optimality probability r."""
    frac_positive: Tensor
    """fraction of samples with r > 0.5 (advantage > 0)."""
    num_samples: Tensor
    """number (sum of mask weights) of samples that count."""

    def metrics(self) -> dict[str, float]:
        """The diagnostics as Python floats (one host sync per field), for a logger."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class NFTLoss:
    """Result of :func:`nft_loss`. ``total = policy + kl``; ``total``, ``policy`` and ``kl``
    carry the autograd graph (``policy`` and ``total`` are float64, see :func:`nft_loss`)."""

    total: Tensor
    policy: Tensor
    kl: Tensor
    """kl_weight * mean ||v_theta - v_ref||^2; a constant 0 when v_ref is None."""
    diagnostics: NFTDiagnostics


def nft_implicit_velocities(v_theta: Tensor, v_old: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """Implicit positive and negative policies (DiffusionNFT; MT-EditFlow eqs. 23-24):

        v+ = beta v_theta + (1 - beta) sg(v_old)
        v- = (1 + beta) sg(v_old) - beta v_theta

    Reference: ``positive_prediction`` / ``implicit_negative_prediction`` in
    NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py``. With beta = 1, v+ = v_theta and
    v- = 2 sg(v_old) - v_theta. Returns (v+, v-).
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    check_same_shape(v_theta, "v_theta", v_old=v_old)
    v_old = v_old.detach()
    v_pos = beta * v_theta + (1.0 - beta) * v_old
    v_neg = (1.0 + beta) * v_old - beta * v_theta
    return v_pos, v_neg


def x0_prediction(x_t: Tensor, v: Tensor, t: Tensor) -> Tensor:
    """Clean-sample prediction from a velocity: x0_hat = x_t - t v.

    Follows from x_t = (1 - t) x0 + t eps and v = eps - x0. ``t`` must broadcast against
    ``x_t`` per sample, e.g. (B, 1, ..., 1).
    """
    return x_t - t * v


def nft_adaptive_weight(x0_hat: Tensor, x0: Tensor) -> Tensor:
    """Per-sample adaptive weight w = sg(max(mean |x0_hat - x0|, 1e-5)), in float64.

    The mean runs over all non-batch elements; (B, ...) -> (B,) float64, detached.
    Reference: ``weight_factor`` / ``negative_weight_factor`` in NVlabs/DiffusionNFT
    ``scripts/train_nft_sd3.py`` (``.double()`` before the difference, ``.clip(min=0.00001)``).
    """
    with torch.no_grad():
        abs_err = (x0_hat.detach().double() - x0.detach().double()).abs()
        return mean_over_non_batch(abs_err).clamp(min=ADAPTIVE_WEIGHT_MIN)


def nft_x0_loss(v: Tensor, x_t: Tensor, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Adaptive-weighted x0-space regression loss of one implicit policy v (v+ or v-):

        x0_hat = x_t - t v
        w      = sg(max(mean |x0_hat - x0|, 1e-5))           (float64)
        L      = mean((x0_hat - x0)^2) / w                    (mean over non-batch dims)

    ``t`` is per sample, broadcastable as (B, 1, ..., 1). Returns (L, w), both (B,) float64:
    dividing by the float64 weight promotes the loss, as in the reference
    (``positive_loss`` / ``negative_loss``, NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py``).
    The gradient flows through x0_hat only, never through w.
    """
    x0_hat = x0_prediction(x_t, v, t)
    weight = nft_adaptive_weight(x0_hat, x0)
    sq_err = (x0_hat - x0) ** 2
    loss = mean_over_non_batch(sq_err / broadcast_per_sample(weight, sq_err.ndim))
    return loss, weight


def velocity_kl(v_theta: Tensor, v_ref: Tensor) -> Tensor:
    """Per-sample KL surrogate to the reference model in velocity space:
    mean((v_theta - sg(v_ref))^2) over non-batch dims, (B, ...) -> (B,).

    Reference: ``kl_div_loss`` in NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py`` (v_ref is
    the base model's prediction with the LoRA adapter disabled).
    """
    check_same_shape(v_theta, "v_theta", v_ref=v_ref)
    return mean_over_non_batch((v_theta - v_ref.detach()) ** 2)


def nft_loss(
    v_theta: Tensor,
    v_old: Tensor,
    x_t: Tensor,
    x0: Tensor,
    t: Tensor | float,
    r: Tensor,
    *,
    beta: float = 1.0,
    adv_clip_max: float = 5.0,
    v_ref: Tensor | None = None,
    kl_weight: float = 1e-4,
    mask: Tensor | None = None,
) -> NFTLoss:
    """DiffusionNFT loss for one noise level per sample (MT-EditFlow eq. 5 / eq. 25):

        v+, v-   = nft_implicit_velocities(v_theta, v_old, beta)
        L+, L-   = nft_x0_loss(v+, ...), nft_x0_loss(v-, ...)            per sample
        policy   = mean_b[(r L+ + (1 - r) L-) / beta] * adv_clip_max
        kl       = kl_weight * mean_b[mean((v_theta - v_ref)^2)]         (if v_ref given)
        total    = policy + kl

    Reference: NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py`` (``ori_policy_loss``,
    ``policy_loss``, ``kl_div_loss``; there ``config.train.beta`` is our ``kl_weight`` and
    ``config.beta`` our ``beta``); the mask as in Edit-R1 ``scripts/train_nft_kontext.py``.

    Args:
        v_theta: (B, ...) velocity of the trained policy (with graph).
        v_old: (B, ...) velocity of the old (rollout) policy; detached here.
        x_t: (B, ...) noised sample (1 - t) x0 + t eps.
        x0: (B, ...) clean rollout result the sample was noised from.
        t: noise level per sample, (B,) or (B, 1, ..., 1), or one number for all.
        r: (B,) optimality probability in [0, 1] (from the clipped advantage, computed by
            ``edit_rl.rewards.advantages``); treated as a constant.
        beta: implicit-policy strength, > 0.
        adv_clip_max: C, the scale of the policy loss (the reference multiplies by it).
        v_ref: (B, ...) reference-model velocity, or None to skip the KL term.
        kl_weight: weight of the velocity-space KL term.
        mask: (B,) bool / 0-1 sample mask (Edit-R1 group filter) or None. The batch means
            become sum(x * mask) / sum(mask); masked samples get exactly zero gradient. If
            the mask keeps no sample, ``total``/``policy``/``kl`` are exact zeros that still
            carry a graph (backward gives zero gradients, no NaN) and every diagnostic is 0.

    Precision: the adaptive weights are float64, so L+, L-, ``policy`` and ``total`` are
    float64 as in the reference; gradients reach ``v_theta`` in its own dtype.
    """
    batch = batch_size_of(v_theta, "v_theta")
    check_same_shape(v_theta, "v_theta", v_old=v_old, x_t=x_t, x0=x0)
    if adv_clip_max <= 0:
        raise ValueError(f"adv_clip_max must be > 0, got {adv_clip_max}")
    if kl_weight < 0:
        raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
    t_b = broadcast_per_sample(per_sample_vector(t, batch, "t", x_t), x_t.ndim)
    r_b = per_sample_vector(r, batch, "r", v_theta).detach()
    m = sample_mask(mask, batch, v_theta)

    v_pos, v_neg = nft_implicit_velocities(v_theta, v_old, beta)
    loss_pos, w_pos = nft_x0_loss(v_pos, x_t, x0, t_b)
    loss_neg, w_neg = nft_x0_loss(v_neg, x_t, x0, t_b)
    r64 = r_b.to(loss_pos.dtype)
    per_sample_policy = (r64 * loss_pos + (1.0 - r64) * loss_neg) / beta
    policy = masked_mean(per_sample_policy * adv_clip_max, m)

    if v_ref is not None:
        kl_per_sample = velocity_kl(v_theta, v_ref)
        kl_div = masked_mean(kl_per_sample, m)
        kl = kl_weight * kl_div
    else:
        kl_div = torch.zeros((), dtype=v_theta.dtype, device=v_theta.device)
        kl = kl_div
    total = policy + kl

    with torch.no_grad():
        diagnostics = NFTDiagnostics(
            positive_loss=masked_mean(loss_pos.detach(), m),
            negative_loss=masked_mean(loss_neg.detach(), m),
            unweighted_policy=masked_mean(per_sample_policy.detach(), m),
            kl_div=kl_div.detach(),
            old_deviation=masked_mean(
                mean_over_non_batch((v_theta.detach() - v_old.detach()) ** 2), m
            ),
            positive_weight=masked_mean(w_pos, m),
            negative_weight=masked_mean(w_neg, m),
            r_mean=masked_mean(r_b, m),
            frac_positive=masked_mean((r_b > 0.5).to(v_theta.dtype), m),
            num_samples=(
                torch.tensor(float(batch), device=v_theta.device)
                if m is None
                else m.to(torch.float32).sum()
            ),
        )
    return NFTLoss(total=total, policy=policy, kl=kl, diagnostics=diagnostics)


def nft_timestep_indices(
    num_samples: int,
    num_steps: int,
    fraction: float = 0.99,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Which rollout noise levels each sample trains on (DiffusionNFT reference).

    For every sample independently: a uniformly random permutation of the rollout's
    ``num_steps`` sigma indices (positions 0..num_steps-1 of the sampler's timestep grid,
    which excludes the terminal sigma = 0), keeping the first k = int(fraction * num_steps),
    at least 1. Returns a (num_samples, k) int64 tensor on the CPU (``generator``'s device).

    Reference: ``perms_time`` (one ``torch.randperm`` per sample) and ``num_train_timesteps =
    int(config.sample.num_steps * config.train.timestep_fraction)`` in NVlabs/DiffusionNFT
    ``scripts/train_nft_sd3.py``; the training loop visits columns 0..k-1 of the permuted
    grid. Deviation: the reference would train on 0 levels when fraction * num_steps < 1;
    here k >= 1. The permutation is drawn as argsort of uniform noise (same distribution,
    one call instead of B).
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, int(num_steps * fraction))
    device = generator.device if generator is not None else None
    noise = torch.rand(num_samples, num_steps, generator=generator, device=device)
    return noise.argsort(dim=1)[:, :k]
