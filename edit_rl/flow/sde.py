"""Flow-GRPO stochastic step with its Gaussian log-probability ("sde") and the "cps" variant.

Reference: yifan123/flow_grpo ``flow_grpo/diffusers_patch/sd3_sde_with_logprob.py``
(``sde_step_with_logprob``); notes `algorithms.md` section 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from edit_rl.flow._tensor import Time, per_sample, upcast
from edit_rl.flow.interpolation import x0_from_velocity

SDE_KINDS = ("sde", "cps")


@dataclass(frozen=True)
class SDEStepOutput:
    """prev_sample: x_{j+1}; log_prob: (B,) float32; mean: mu (shape of x); std: (B,) std_dev_t."""

    prev_sample: Tensor
    log_prob: Tensor
    mean: Tensor
    std: Tensor


def flow_sde_std(sigma: Tensor | float, sigma_max: float, noise_level: float) -> Tensor | float:
    """std_dev_t s = a sqrt(sigma / (1 - sigma)), with sigma_max (= sigmas[1]) replacing sigma
    in the denominator where sigma = 1 (flow_grpo ``sd3_sde_with_logprob.py``)."""
    if isinstance(sigma, Tensor):
        denom = 1 - torch.where(sigma == 1, torch.full_like(sigma, sigma_max), sigma)
        return noise_level * torch.sqrt(sigma / denom)
    denom = 1.0 - (sigma_max if sigma == 1.0 else sigma)
    return noise_level * math.sqrt(sigma / denom)


def flow_sde_mean(x: Tensor, v: Tensor, sigma: Time, sigma_next: Time, std: Time) -> Tensor:
    """mu = x (1 + s^2 dt / (2 sigma)) + v (1 + s^2 (1 - sigma) / (2 sigma)) dt, dt = sigma' - sigma.

    Euler-Maruyama step of the reverse-time SDE with the same marginals as the flow ODE
    (flow_grpo ``sd3_sde_with_logprob.py``, ``prev_sample_mean``). s = 0 gives the Euler step.
    """
    dt = sigma_next - sigma
    return x * (1 + std**2 / (2 * sigma) * dt) + v * (1 + std**2 * (1 - sigma) / (2 * sigma)) * dt


def cps_std(sigma_next: Tensor | float, noise_level: float) -> Tensor | float:
    """CPS noise std: sigma' sin(a pi / 2) (flow_grpo ``sd3_sde_with_logprob.py``, sde_type "cps")."""
    return sigma_next * math.sin(noise_level * math.pi / 2)


def cps_mean(x: Tensor, v: Tensor, sigma: Time, sigma_next: Time, std: Time) -> Tensor:
    """Coefficients-preserving mean: mu = x0_hat (1 - sigma') + x1_hat sqrt(sigma'^2 - std^2),
    x0_hat = x - sigma v, x1_hat = x + (1 - sigma) v (flow_grpo, sde_type "cps")."""
    x0_hat = x0_from_velocity(x, sigma, v)
    x1_hat = x + (1 - sigma) * v
    root = torch.sqrt(torch.as_tensor(sigma_next**2 - std**2, dtype=x.dtype, device=x.device))
    return x0_hat * (1 - sigma_next) + x1_hat * root


def gaussian_log_prob(sample: Tensor, mean: Tensor, std: Tensor | float) -> Tensor:
    """log N(sample; mean, std^2) per element, averaged (not summed) over non-batch dims, float32.

    -(x - mu)^2 / (2 std^2) - log std - log sqrt(2 pi) (flow_grpo ``sd3_sde_with_logprob.py``).
    """
    std_t = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    lp = -((sample - mean) ** 2) / (2 * std_t**2) - torch.log(std_t) - 0.5 * math.log(2 * math.pi)
    return lp.mean(dim=tuple(range(1, lp.ndim))).float()


def cps_log_prob(sample: Tensor, mean: Tensor) -> Tensor:
    """CPS log-probability with all constants removed: -(x - mu)^2 averaged over non-batch dims.

    As flow_grpo (sde_type "cps", "remove all constants"): neither the normalisation nor the
    1 / (2 std^2) factor is kept (std depends only on the grid). Float32, shape (B,).
    """
    lp = -((sample - mean) ** 2)
    return lp.mean(dim=tuple(range(1, lp.ndim))).float()


def sde_step_with_logprob(
    x: Tensor,
    v: Tensor,
    sigma: Time,
    sigma_next: Time,
    sigma_max: float,
    noise_level: float,
    prev_sample: Tensor | None = None,
    generator: torch.Generator | None = None,
    kind: str = "sde",
) -> SDEStepOutput:
    """Flow-GRPO stochastic step x -> x' ~ N(mu, std_eff^2) and log p(x' | x).

    kind "sde": mu = `flow_sde_mean`, std_dev_t = `flow_sde_std`, noise std_eff = std_dev_t
    sqrt(sigma - sigma'), log p = `gaussian_log_prob`. kind "cps": mu = `cps_mean`,
    std_dev_t = std_eff = `cps_std`, log p = `cps_log_prob` (constants dropped, as flow_grpo).
    ``sigma`` / ``sigma_next`` are floats or per-sample (B,) tensors; ``sigma_max`` is the grid's
    sigmas[1], used where sigma = 1. If ``prev_sample`` is given (the learner recomputing log-probs)
    it is used instead of sampling; its log-density is taken with it detached, so gradients flow
    through the mean only. Everything in float32 (or float64). ``std`` is returned as (B,).
    noise_level = 0 gives the deterministic step and a degenerate (NaN / -inf) "sde" log-prob;
    so does "cps" at sigma' = 0.
    """
    if kind not in SDE_KINDS:
        raise ValueError(f"unknown SDE kind {kind!r}; expected one of {SDE_KINDS}")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    if prev_sample is not None and generator is not None:
        raise ValueError("pass either prev_sample (recompute) or generator (sample), not both")
    if not isinstance(sigma, Tensor) and not isinstance(sigma_next, Tensor):
        if not 0.0 <= sigma_next < sigma <= 1.0:
            raise ValueError(f"need 0 <= sigma_next < sigma <= 1, got {sigma_next}, {sigma}")
    x, v = upcast(x), upcast(v)
    s, s_next = per_sample(sigma, x), per_sample(sigma_next, x)
    if kind == "sde":
        std = flow_sde_std(s, sigma_max, noise_level)
        mean = flow_sde_mean(x, v, s, s_next, std)
        noise_std = std * (s - s_next) ** 0.5
    else:
        std = cps_std(s_next, noise_level)
        mean = cps_mean(x, v, s, s_next, std)
        noise_std = std
    if prev_sample is None:
        # Drawn where the generator lives (CUDA refuses a CPU generator for a CUDA tensor), then
        # moved: the same seed gives the same noise on every device.
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                            device=generator.device if generator is not None else x.device).to(x.device)
        prev_sample = mean + noise_std * noise
    else:
        prev_sample = prev_sample.to(x.dtype)
    if kind == "sde":
        log_prob = gaussian_log_prob(prev_sample.detach(), mean, noise_std)
    else:
        log_prob = cps_log_prob(prev_sample.detach(), mean)
    std_b = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1)
    return SDEStepOutput(prev_sample, log_prob, mean, std_b.expand(x.shape[0]).clone())
