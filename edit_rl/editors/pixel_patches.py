"""Pixel space as FLUX's packed latent layout: 4 x 4 RGB pixel patches -> 48-channel tokens.

The "latent" of an image is its 2x space-to-depth (``pixel_unshuffle``: (B, 3, H, W) ->
(B, 12, H/2, W/2), a lossless "VAE" with scale factor 2); FLUX's 2 x 2 packing
(`edit_rl.editors.flux_latents.pack_latents`) of that gives one token per 4 x 4 pixel patch,
in row-major patch order, so the Kontext position ids [first, row, col] of `latent_image_ids`
address patches exactly as they address 16 x 16 pixel regions of a FLUX.1 image.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from edit_rl.editors.flux_latents import pack_latents, unpack_latents

PATCH = 4  # pixels per token side
SPACE_TO_DEPTH = PATCH // 2  # the "VAE scale factor": FLUX's 2 x 2 packing does the rest
TOKEN_CHANNELS = 3 * PATCH * PATCH


def patchify(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, (H/4)(W/4), 48); token (i, j) holds pixels rows 4i..4i+3, cols 4j..4j+3."""
    if x.ndim != 4 or x.shape[-2] % PATCH or x.shape[-1] % PATCH:
        raise ValueError(f"need (B, C, H, W) with H, W multiples of {PATCH}, got {tuple(x.shape)}")
    return pack_latents(F.pixel_unshuffle(x, SPACE_TO_DEPTH))


def unpatchify(tokens: Tensor, height: int, width: int) -> Tensor:
    """(B, (H/4)(W/4), 48) -> (B, 3, H, W), the inverse of `patchify`."""
    return F.pixel_shuffle(unpack_latents(tokens, height // SPACE_TO_DEPTH, width // SPACE_TO_DEPTH),
                           SPACE_TO_DEPTH)
