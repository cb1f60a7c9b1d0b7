"""Batch reductions and shape checks shared by the objectives.

Every objective first reduces a (B, ...) tensor to one number per sample, then averages
the samples, optionally under a per-sample mask (Edit-R1 group filter). Nothing here
reads a tensor's values on the host, so nothing forces a device sync.
"""

from __future__ import annotations

import torch
from torch import Tensor


def batch_size_of(x: Tensor, name: str) -> int:
    """Number of samples of a batched tensor (its first dimension); raise if ``x`` is 0-d."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError(f"{name} must have a leading batch dimension, got a 0-d tensor")
    return x.shape[0]


def check_same_shape(ref: Tensor, ref_name: str, **others: Tensor) -> None:
    """Raise unless every tensor in ``others`` has exactly the shape of ``ref``."""
    for name, x in others.items():
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.shape != ref.shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but {ref_name} has {tuple(ref.shape)}"
            )


def per_sample_vector(x: Tensor | float, batch_size: int, name: str, like: Tensor) -> Tensor:
    """A per-sample quantity as a (B,) tensor.

    Accepts a Python number or 0-d tensor (shared by all samples) or any tensor with exactly
    ``batch_size`` elements laid out along the batch, e.g. (B,) or (B, 1, 1, 1). Python
    numbers and integer tensors take ``like``'s floating dtype; floating tensors keep theirs.
    """
    t = torch.as_tensor(x, device=like.device)
    if not t.is_floating_point():
        t = t.to(like.dtype)
    if t.ndim == 0:
        return t.expand(batch_size)
    if t.numel() != batch_size or (t.ndim > 1 and t.shape[0] != batch_size):
        raise ValueError(
            f"{name} must be a scalar or hold one value per sample (batch {batch_size}), "
            f"got shape {tuple(t.shape)}"
        )
    return t.reshape(batch_size)


def broadcast_per_sample(v: Tensor, ndim: int) -> Tensor:
    """(B,) -> (B, 1, ..., 1) with ``ndim`` dimensions, to scale a (B, ...) tensor per sample."""
    return v.reshape(v.shape[0], *([1] * (ndim - 1)))


def mean_over_non_batch(x: Tensor) -> Tensor:
    """(B, ...) -> (B,): mean over every dimension but the first.

    A (B,) tensor is returned unchanged (``Tensor.mean(dim=())`` would reduce everything).
    """
    if x.ndim == 0:
        raise ValueError("expected a batched tensor, got a 0-d tensor")
    if x.ndim == 1:
        return x
    return x.mean(dim=tuple(range(1, x.ndim)))


def sample_mask(mask: Tensor | None, batch_size: int, like: Tensor) -> Tensor | None:
    """Validate a per-sample mask and return it as a (B,) tensor of ``like``'s device.

    ``mask`` is (B,) bool or 0/1 float (Edit-R1 ``valid_mask``). Non-negative float weights
    are accepted too; :func:`masked_mean` is then the weighted mean.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.numel() != batch_size or (mask.ndim > 1 and mask.shape[0] != batch_size):
        raise ValueError(
            f"mask must hold one value per sample (batch {batch_size}), got {tuple(mask.shape)}"
        )
    return mask.reshape(batch_size).to(like.device)


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of per-sample ``values`` (B,) over the samples the mask keeps.

    mask None:  mean(values).
    mask given: sum(values * mask) / sum(mask), as Edit-R1 ``mean_by_mask``
                (PKU-YuanGroup/Edit-R1 ``scripts/train_nft_kontext.py``).

    Masked-out samples are zeroed with ``torch.where`` before the product, so a NaN/inf in a
    dropped sample cannot reach the value (the gradient w.r.t. that sample's own non-finite
    inputs is then undefined; with finite inputs it is exactly 0). If the mask keeps no
    sample (sum(mask) == 0) the result is an exact 0 that is still attached to ``values``'
    graph (its gradient is 0, never NaN), like the reference's ``x.sum() * 0`` -- decided
    without a host sync.
    An empty batch (B = 0) likewise gives 0.
    """
    if mask is None:
        return values.mean() if values.numel() > 0 else values.sum()
    m = mask.to(values.dtype)
    kept = torch.where(m != 0, values, torch.zeros_like(values)) * m
    denom = m.sum()
    safe_denom = torch.where(denom != 0, denom, torch.ones_like(denom))
    return kept.sum() / safe_denom
