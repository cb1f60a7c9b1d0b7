"""Image tensors <-> PIL at an explicit size, and to uint8 arrays. Editors take and give float
(B, 3, H, W) in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def pil_to_tensor(images: Sequence[Image.Image], size: int) -> Tensor:
    """RGB images resized (bicubic) to size x size -> float32 (B, 3, size, size) in [0, 1].

    The size is always given: no pipeline default (FLUX Kontext's would be ~1024^2).
    """
    arrays = [np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
              for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0


def tensor_to_pil(images: Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> RGB images, rounded to 8 bits."""
    return [Image.fromarray(a) for a in uint8_images(images)]


def uint8_images(images: Tensor) -> list[np.ndarray]:
    """Float (B, 3, H, W) in [0, 1] -> B uint8 (H, W, 3) arrays (what a saved PNG holds, and what the
    judge and the consistency scorer take)."""
    return list((images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
