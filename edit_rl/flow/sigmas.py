"""Sigma (flow-time) grids: linear and FLUX Kontext's resolution-dependent shifted grid."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_sigmas(num_steps: int) -> Tensor:
    """sigmas = linspace(1, 1/n, n) (float64), the grid before shifting and before the final 0.

    diffusers ``FluxKontextPipeline.__call__``: ``np.linspace(1.0, 1 / num_inference_steps, n)``.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return torch.linspace(1.0, 1.0 / num_steps, num_steps, dtype=torch.float64)


def calculate_shift(
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> float:
    """mu linear in the number of target image tokens: mu = m L + b through (256, 0.5), (4096, 1.15).

    m = (max_shift - base_shift) / (max_seq_len - base_seq_len), b = base_shift - m base_seq_len;
    diffusers ``pipelines/flux/pipeline_flux_kontext.py::calculate_shift``.
    """
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    b = base_shift - m * base_seq_len
    return image_seq_len * m + b


def exponential_time_shift(sigmas: Tensor, mu: float) -> Tensor:
    """sigma' = e^mu / (e^mu + (1/sigma - 1)).

    diffusers ``FlowMatchEulerDiscreteScheduler._time_shift_exponential`` with its exponent
    sigma = 1 (as called by ``set_timesteps`` when ``use_dynamic_shifting``). Maps 1 -> 1, 0 -> 0.
    """
    e = math.exp(mu)
    return e / (e + (1.0 / sigmas - 1.0))


def kontext_sigmas(
    num_steps: int,
    image_seq_len: int,
    base_seq_len: int = 256,
    max_seq_len: int = 4096,
    base_shift: float = 0.5,
    max_shift: float = 1.15,
) -> Tensor:
    """FLUX Kontext's dynamic-shift grid, length num_steps + 1, from 1 down to a final 0 (float64).

    exponential_time_shift(linear_sigmas(n), calculate_shift(L)) followed by 0, as
    ``FluxKontextPipeline`` + ``FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True)
    .set_timesteps(sigmas=..., mu=...)``. ``image_seq_len`` counts target tokens only
    ((H/16) * (W/16); 1024 at 512x512).
    """
    mu = calculate_shift(image_seq_len, base_seq_len, max_seq_len, base_shift, max_shift)
    shifted = exponential_time_shift(linear_sigmas(num_steps), mu)
    return torch.cat([shifted, shifted.new_zeros(1)])
