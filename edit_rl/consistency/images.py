"""Image inputs of EdiVal-CC: conversion to uint8 (3, H, W) tensors, the benchmark's resize, crops.

Everything downstream (detector, feature extractor, masks) sees uint8 RGB tensors of shape
(3, H, W), the content of a saved PNG, which is what the EdiVal reference scores.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

ImageLike = Union[Image.Image, Tensor, np.ndarray]
_FLOAT_TOL = 1e-3


def to_uint8_chw(image: ImageLike) -> Tensor:
    """PIL image (any mode, converted to RGB), uint8 array (H, W, 3) as the judge takes, uint8
    tensor (3, H, W), or float tensor (3, H, W) in [0, 1] (rounded to uint8 as saving a PNG would)
    -> uint8 tensor (3, H, W) on the CPU."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image arrays must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).contiguous()
    if not isinstance(image, Tensor):
        raise TypeError(f"expected a PIL image, a uint8 (H, W, 3) array or a tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image tensors must be (3, H, W), got shape {tuple(image.shape)}")
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        return image.contiguous()
    if not image.is_floating_point():
        raise TypeError(f"image tensors must be uint8 or floating point, got {image.dtype}")
    lo, hi = float(image.min()), float(image.max())
    if lo < -_FLOAT_TOL or hi > 1 + _FLOAT_TOL:
        raise ValueError(f"float image tensors must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8).contiguous()


def to_pil(image: Tensor) -> Image.Image:
    """uint8 (3, H, W) tensor -> RGB PIL image."""
    return Image.fromarray(image.permute(1, 2, 0).numpy(), mode="RGB")


def resize_square(image: Tensor, size: int) -> Tensor:
    """Resize to size x size with PIL's Lanczos filter unless already that size
    (EdiVal ``detector/utils.py`` ``load_resize_image``: every image is scored at 512 x 512)."""
    if tuple(image.shape[1:]) == (size, size):
        return image
    return to_uint8_chw(to_pil(image).resize((size, size), Image.Resampling.LANCZOS))


def box_to_pixels(box: Tensor, height: int, width: int) -> tuple[int, int, int, int]:
    """Float (x1, y1, x2, y2) pixel box -> integer corners as EdiVal computes them: truncate
    toward zero, then clamp x to [0, width] and y to [0, height]
    (``consistency_detector.py`` ``_crop_object`` / ``_get_background``)."""
    x1, y1, x2, y2 = (int(v) for v in box.tolist())
    return (min(max(x1, 0), width), min(max(y1, 0), height),
            min(max(x2, 0), width), min(max(y2, 0), height))


def crop_box(image: Tensor, box: Tensor) -> Tensor:
    """Crop ``image`` (3, H, W) to the pixel box, end-exclusive like ``PIL.Image.crop``
    (EdiVal ``_crop_object``). Deviation: a box that truncates to zero width or height is widened
    to one pixel (the reference would hand an empty image to the DINOv3 processor and fail)."""
    height, width = image.shape[1:]
    x1, y1, x2, y2 = box_to_pixels(box, height, width)
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    return image[:, y1:y2, x1:x2].contiguous()
