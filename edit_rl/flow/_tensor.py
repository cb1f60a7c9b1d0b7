"""Shape and dtype helpers shared by the flow modules."""

from __future__ import annotations

import torch
from torch import Tensor

Time = float | Tensor


def per_sample(t: Time, like: Tensor) -> float | Tensor:
    """Broadcast a time over the non-batch dims of ``like``.

    A Python float or a 0-dim tensor is returned as is (it already broadcasts); a (B,) tensor is
    reshaped to (B, 1, ..., 1) and moved to ``like``'s device and dtype; a (B, 1, ..., 1) tensor
    (already broadcast) is only moved.
    """
    if not isinstance(t, Tensor):
        return float(t)
    if t.ndim == 0:
        return t.to(device=like.device, dtype=like.dtype)
    if t.ndim == like.ndim > 1 and t.shape[0] == like.shape[0] and t[0].numel() == 1:
        return t.to(device=like.device, dtype=like.dtype)
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(
            f"t must be a float, a 0-dim tensor or a (B,) tensor with B = {like.shape[0]}; "
            f"got shape {tuple(t.shape)}"
        )
    return t.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.ndim - 1)))


def upcast(x: Tensor) -> Tensor:
    """Return ``x`` in float32, or unchanged if it is already float32 or wider (float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
