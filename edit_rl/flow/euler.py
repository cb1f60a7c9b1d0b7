"""Euler ODE step of the probability-flow ODE dx/dt = v."""

from __future__ import annotations

from torch import Tensor

from edit_rl.flow._tensor import Time, per_sample, upcast


def euler_step(x: Tensor, v: Tensor, sigma: Time, sigma_next: Time) -> Tensor:
    """Euler step x' = x + (sigma_next - sigma) v.

    Same as diffusers ``FlowMatchEulerDiscreteScheduler.step`` (notes `algorithms.md` section 1).
    Computed in float32 (or float64 if given); sigma / sigma_next are floats or (B,) tensors.
    """
    x, v = upcast(x), upcast(v)
    return x + (per_sample(sigma_next, x) - per_sample(sigma, x)) * v
