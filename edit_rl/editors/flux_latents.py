"""FLUX.1 latent layout: VAE normalisation, 2x2 packing into tokens, and rotary position ids.

Source: diffusers ``pipelines/flux/pipeline_flux_kontext.py`` (``_encode_vae_image``,
``_pack_latents``, ``_unpack_latents``, ``_prepare_latent_image_ids``, ``prepare_latents``) and
docs/algorithms.md §2.
"""

from __future__ import annotations

import torch
from torch import Tensor


def normalize_latents(z: Tensor, shift_factor: float, scaling_factor: float) -> Tensor:
    """z_norm = (z - shift_factor) * scaling_factor (``FluxKontextPipeline._encode_vae_image``)."""
    return (z - shift_factor) * scaling_factor


def denormalize_latents(z_norm: Tensor, shift_factor: float, scaling_factor: float) -> Tensor:
    """z = z_norm / scaling_factor + shift_factor, the inverse of `normalize_latents` (before VAE decode)."""
    return z_norm / scaling_factor + shift_factor


def pack_latents(z: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, (h/2)(w/2), 4C): token (i, j) holds the 2x2 patch rows 2i..2i+1, cols 2j..2j+1,
    channel-major: feature index c * 4 + 2 * di + dj (``FluxPipeline._pack_latents``)."""
    b, c, h, w = z.shape
    if h % 2 or w % 2:
        raise ValueError(f"latent height and width must be even to pack 2x2 patches, got {h}x{w}")
    patches = z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, (h/2)(w/2), 4C) -> (B, C, h, w) for latent size h x w, the inverse of `pack_latents`."""
    b, n, d = tokens.shape
    if n != (height // 2) * (width // 2) or d % 4:
        raise ValueError(f"cannot unpack {n} tokens of width {d} into a {height}x{width} latent")
    patches = tokens.reshape(b, height // 2, width // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, d // 4, height, width)


def latent_image_ids(token_rows: int, token_cols: int, first: int = 0) -> Tensor:
    """Position ids (rows * cols, 3) of packed tokens in row-major order: [first, row, col].

    first = 0 for the target (generated) image, 1 for the Kontext reference image
    (``FluxKontextPipeline.prepare_latents``: ``image_ids[..., 0] = 1``).
    """
    rows = torch.arange(token_rows).repeat_interleave(token_cols)
    cols = torch.arange(token_cols).repeat(token_rows)
    return torch.stack([torch.full_like(rows, first), rows, cols], dim=1).to(torch.float32)
