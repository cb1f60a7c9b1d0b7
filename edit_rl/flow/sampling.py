"""Batched sampling loop over a sigma grid: Euler, dpm2, or Flow-GRPO SDE (optionally windowed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from edit_rl.flow._tensor import upcast
from edit_rl.flow.dpm_solver import dpm2_step
from edit_rl.flow.euler import euler_step
from edit_rl.flow.sde import SDE_KINDS, sde_step_with_logprob

METHODS = ("euler", "dpm2", "sde")

VelocityFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class SamplingResult:
    """Output of `sample`. B = batch, n = number of steps, K = number of SDE steps.

    x0: final sample (B, ...). sigmas: the grid (n + 1,), float64.
    When recording (else None): latents / next_latents (B, n, ...): x_j and x_{j+1} of every step;
    sde_steps (K,) long: indices j of the SDE steps (sigma_j = sigmas[j], sigma_{j+1} = sigmas[j + 1]);
    log_probs (B, K) float32, means (B, K, ...), stds (B, K): of those SDE steps only.
    """

    x0: Tensor
    sigmas: Tensor
    latents: Tensor | None = None
    next_latents: Tensor | None = None
    sde_steps: Tensor | None = None
    log_probs: Tensor | None = None
    means: Tensor | None = None
    stds: Tensor | None = None


def _check_grid(sigmas: Tensor | Sequence[float]) -> Tensor:
    grid = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D grid of at least 2 values, got shape {tuple(grid.shape)}")
    if not bool(torch.all(grid[1:] < grid[:-1])):
        raise ValueError(f"sigmas must be strictly decreasing, got {grid.tolist()}")
    if grid[0] > 1 or grid[-1] < 0:
        raise ValueError(f"sigmas must lie in [0, 1], got {grid.tolist()}")
    return grid


def _sde_range(method: str, sde_window: tuple[int, int] | None, n: int) -> range:
    if method != "sde":
        if sde_window is not None:
            raise ValueError(f"sde_window applies to method 'sde' only, got method {method!r}")
        return range(0)
    if sde_window is None:
        return range(n)
    start, end = sde_window
    if not 0 <= start < end <= n:
        raise ValueError(f"sde_window must satisfy 0 <= start < end <= {n}, got {sde_window}")
    return range(start, end)


def sample(
    velocity_fn: VelocityFn,
    x_init: Tensor,
    sigmas: Tensor | Sequence[float],
    method: str,
    *,
    generator: torch.Generator | None = None,
    noise_level: float = 0.7,
    sde_window: tuple[int, int] | None = None,
    sde_kind: str = "sde",
    record: bool = False,
) -> SamplingResult:
    """Integrate from x_init at sigmas[0] down to sigmas[-1] with n = len(sigmas) - 1 steps.

    velocity_fn(x, sigma) -> v, with sigma a (B,) tensor (x's dtype and device) and x in float32
    (or float64 if x_init is): the loop keeps its state in float32 like the references, so a
    bf16 model must cast inside velocity_fn. method: "euler" (`euler_step`), "dpm2"
    (`dpm2_step`), or "sde" (`sde_step_with_logprob` of kind ``sde_kind`` on steps
    sde_window = (start, end), i.e. start..end-1, all steps if None, and Euler elsewhere:
    Flow-GRPO-Fast). sigma_max of the SDE is sigmas[1]. Deterministic for a given generator
    (only SDE steps draw noise). Gradients are not disabled here: wrap in torch.no_grad() for rollouts.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if sde_kind not in SDE_KINDS:
        raise ValueError(f"unknown sde_kind {sde_kind!r}; expected one of {SDE_KINDS}")
    if noise_level < 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    if x_init.ndim < 1:
        raise ValueError("x_init must have a batch dimension")
    grid = _check_grid(sigmas)
    n = grid.numel() - 1
    sde_steps = _sde_range(method, sde_window, n)
    sigma_max = float(grid[1])

    x = upcast(x_init)
    batch = x.shape[0]
    latents: list[Tensor] = []
    next_latents: list[Tensor] = []
    log_probs: list[Tensor] = []
    means: list[Tensor] = []
    stds: list[Tensor] = []
    prev_x0_hat: Tensor | None = None
    for j in range(n):
        sigma, sigma_next = float(grid[j]), float(grid[j + 1])
        v = velocity_fn(x, torch.full((batch,), sigma, dtype=x.dtype, device=x.device))
        if v.shape != x.shape:
            raise ValueError(f"velocity_fn returned shape {tuple(v.shape)}, expected {tuple(x.shape)}")
        if method == "dpm2":
            x_next, prev_x0_hat = dpm2_step(x, v, grid, j, prev_x0_hat)
        elif j in sde_steps:
            out = sde_step_with_logprob(
                x, v, sigma, sigma_next, sigma_max, noise_level, generator=generator, kind=sde_kind
            )
            x_next = out.prev_sample
            if record:
                log_probs.append(out.log_prob)
                means.append(out.mean)
                stds.append(out.std)
        else:
            x_next = euler_step(x, v, sigma, sigma_next)
        if record:
            latents.append(x)
            next_latents.append(x_next)
        x = x_next

    if not record:
        return SamplingResult(x0=x, sigmas=grid)
    return SamplingResult(
        x0=x,
        sigmas=grid,
        latents=torch.stack(latents, dim=1),
        next_latents=torch.stack(next_latents, dim=1),
        sde_steps=torch.tensor(list(sde_steps), dtype=torch.long),
        log_probs=torch.stack(log_probs, dim=1) if log_probs else x.new_zeros(batch, 0, dtype=torch.float32),
        means=torch.stack(means, dim=1) if means else x.new_zeros(batch, 0, *x.shape[1:]),
        stds=torch.stack(stds, dim=1) if stds else x.new_zeros(batch, 0, dtype=torch.float32),
    )
