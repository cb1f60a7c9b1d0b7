"""The formulas of EdiVal-CC (EdiVal ``detector/consistency_detector.py``; MT-EditFlow appendix D,
eqs. 13-16), each on batched tensors.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from edit_rl.consistency.images import box_to_pixels

OBJECT_ALPHA = 0.5
BACKGROUND_WEIGHT_THRESHOLD = 0.5


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Cosine over the last dim (torch's, eps 1e-8, 0 for a zero vector), clamped to [-1, 1]
    against float round-off (1 + 1e-7 for identical inputs would fail the reward range checks)."""
    return F.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0)


def object_similarity(cls_a: Tensor, cls_b: Tensor, patches_a: Tensor, patches_b: Tensor,
                      alpha: float = OBJECT_ALPHA) -> Tensor:
    """Per-object DINOv3 similarity of two crops of the same box (MT-EditFlow eq. 15; EdiVal
    ``_calculate_dinov3_similarity``):

        s = alpha * cos(CLS_a, CLS_b) + (1 - alpha) * cos(mean_p patch_a[p], mean_p patch_b[p]),

    alpha = 0.5. ``cls_*``: (N, D); ``patches_*``: (N, Hp, Wp, D) (patch tokens only, no
    registers); returns (N,). Cosines of raw, un-normalised vectors, as in the reference.
    """
    semantic = _cosine(cls_a, cls_b)
    texture = _cosine(patches_a.flatten(1, 2).mean(1), patches_b.flatten(1, 2).mean(1))
    return alpha * semantic + (1 - alpha) * texture


def background_mask(height: int, width: int, boxes: Tensor) -> Tensor:
    """Pixel mask of the background, 1 outside every box and 0 inside their union (MT-EditFlow
    eq. 13: full image minus the union of the detections in both images; EdiVal
    ``_get_background``). Boxes (K, 4) in pixels are truncated and clamped like the reference and
    filled like its ``ImageDraw.rectangle``, which includes the x2 column and the y2 row.
    Returns float (height, width).
    """
    mask = torch.ones(height, width)
    for box in boxes:
        x1, y1, x2, y2 = box_to_pixels(box, height, width)
        mask[y1:y2 + 1, x1:x2 + 1] = 0.0
    return mask


def patch_weights(mask: Tensor, input_size: tuple[int, int], grid: tuple[int, int]) -> Tensor:
    """Soft weight of each ViT patch = the unmasked fraction of its pixels (EdiVal
    ``_calculate_background_consistency_dino``): the binary pixel mask (H, W) is resized to the
    model input size with PIL's NEAREST filter (as the reference; torch's nearest modes round
    differently at exact half-pixel positions), then average-pooled over each patch (area
    interpolation when the grid does not divide the input). Returns (Hp * Wp,) in row-major
    patch order.
    """
    mask_image = Image.fromarray((mask > 0.5).to(torch.uint8).mul(255).numpy(), mode="L")
    resized_image = mask_image.resize((input_size[1], input_size[0]), resample=Image.Resampling.NEAREST)
    resized = torch.from_numpy(np.array(resized_image)).float().div(255.0)[None, None]
    (in_h, in_w), (grid_h, grid_w) = input_size, grid
    if in_h % grid_h == 0 and in_w % grid_w == 0:
        kernel = (in_h // grid_h, in_w // grid_w)
        pooled = F.avg_pool2d(resized, kernel_size=kernel, stride=kernel)
    else:
        pooled = F.interpolate(resized, size=grid, mode="area")
    return pooled.reshape(-1).clamp(0.0, 1.0)


def masked_global_cosine(tokens_a: Tensor, tokens_b: Tensor, weights: Tensor,
                         threshold: float = BACKGROUND_WEIGHT_THRESHOLD) -> Tensor:
    """Background similarity (MT-EditFlow eq. 16; EdiVal ``_masked_global_cosine``):

        w_p <- w_p * [w_p >= threshold]            (threshold 0.5)
        f   = sum_p w_p * t_p / ||t_p|| / (sum_p w_p + 1e-6)    for each image
        sim = cos(f_a, f_b)

    ``tokens_*``: (N, P, D) patch tokens; ``weights``: (N, P) shared by both images. Returns (N,).
    When every weight is dropped both pooled vectors are 0 and the cosine is 0, as in the reference.
    """
    weights = weights * (weights >= threshold).to(weights.dtype)
    w = weights.unsqueeze(-1)
    pooled_a = (F.normalize(tokens_a, p=2, dim=-1, eps=1e-8) * w).sum(-2) / (w.sum(-2) + 1e-6)
    pooled_b = (F.normalize(tokens_b, p=2, dim=-1, eps=1e-8) * w).sum(-2) / (w.sum(-2) + 1e-6)
    return _cosine(pooled_a, pooled_b)


def combine_cc(object_score: Optional[float], background_score: Optional[float]) -> Optional[float]:
    """Per-pair CC = (object + background) / 2 (MT-EditFlow appendix D: the mean of
    ``object_dinov3_consistency_mean`` and ``background_dinov3_consistency``). A missing term
    (no unchanged objects, or background not checked) leaves the other alone; None if both are
    missing.
    """
    present = [s for s in (object_score, background_score) if s is not None]
    return sum(present) / len(present) if present else None


def mean_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    """Mean of the values that are not None; None if there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
