"""Rectified-flow interpolation between data and noise, and its velocity parametrisation."""

from __future__ import annotations

from torch import Tensor

from edit_rl.flow._tensor import Time, per_sample


def interpolate(x0: Tensor, noise: Tensor, t: Time) -> Tensor:
    """Noisy latent x_t = (1 - t) x0 + t eps.

    Rectified flow (FLUX / SD3), as diffusers ``FlowMatchEulerDiscreteScheduler.scale_noise``;
    notes `algorithms.md` section 1. ``t`` is a float or a (B,) tensor.
    """
    tt = per_sample(t, x0)
    return (1 - tt) * x0 + tt * noise


def velocity_target(x0: Tensor, noise: Tensor) -> Tensor:
    """Velocity target v = d x_t / d t = eps - x0 (rectified flow; notes section 1)."""
    return noise - x0


def x0_from_velocity(x_t: Tensor, t: Time, v: Tensor) -> Tensor:
    """Data prediction x0_hat = x_t - t v (inverts `interpolate` given v = eps - x0; notes section 1).

    Same as diffusers DPMSolverMultistepScheduler.convert_model_output for "flow_prediction".
    """
    return x_t - per_sample(t, x_t) * v
