"""Input checks shared by the reward modules (shape, NaN/inf, value range).

Errors are ``ValueError`` with a message naming the argument and the problem, so a
caller that has already counted its judge fallbacks sees exactly what slipped through.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_ndim(x: Tensor, ndim: int, name: str, layout: str) -> None:
    """Raise unless ``x`` is a tensor with ``ndim`` dimensions (``layout`` names them)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")


def check_finite(x: Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or +-inf values, saying how many."""
    if not (x.is_floating_point() or x.is_complex()):
        return
    num_nan = int(torch.isnan(x).sum())
    if num_nan:
        raise ValueError(f"{name} contains {num_nan} NaN value(s) (of {x.numel()})")
    num_inf = int(torch.isinf(x).sum())
    if num_inf:
        raise ValueError(f"{name} contains {num_inf} infinite value(s) (of {x.numel()})")


def check_range(x: Tensor, lo: float, hi: float, name: str) -> None:
    """Raise if any value of ``x`` lies outside the closed interval [lo, hi]."""
    bad = (x < lo) | (x > hi)
    num_bad = int(bad.sum())
    if num_bad:
        first = float(x[bad].flatten()[0])
        raise ValueError(
            f"{name} has {num_bad} value(s) outside [{lo}, {hi}] (e.g. {first})"
        )


def as_float64(x: Tensor) -> Tensor:
    """Statistics are computed in float64, as the reference trackers do (numpy float64)."""
    return x.to(torch.float64)


def result_dtype(x: Tensor) -> torch.dtype:
    """Outputs keep a floating input's dtype; integer/bool inputs give float32."""
    return x.dtype if x.is_floating_point() else torch.float32
