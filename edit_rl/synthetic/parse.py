"""Pixels -> symbolic scene, from the image alone (the verifiable checker's eyes).

1. Quantise: each pixel takes the nearest palette colour if it lies within
   ``MAX_COLOR_DISTANCE`` of it (RGB Euclidean), else it is "unknown".
2. Background: the most frequent known colour.
3. Every other colour (unknown included) is split into 4-connected components.
4. A component of an object colour is an object if some shape/size template, placed on the
   component's bounding box (offsets of up to one pixel tried), overlaps it with IoU >=
   ``MIN_SHAPE_IOU``; the best template gives shape and size, the component's centroid the cell.
   Every other component is junk (stray pixels, broken shapes, unknown colours).

On clean renders this returns the rendered scene exactly (tested over many seeds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
from PIL import Image

from edit_rl.synthetic.render import shape_mask
from edit_rl.synthetic.world import (
    OBJECT_COLORS,
    PALETTE,
    SHAPES,
    SIZES,
    Cell,
    Geometry,
    ObjectDesc,
    Scene,
    SceneObject,
)

MAX_COLOR_DISTANCE = 60.0  # palette colours are >= 98 apart
MIN_SHAPE_IOU = 0.8
UNKNOWN = "unknown"
_NAMES: tuple[str, ...] = tuple(PALETTE)
_COLORS = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)

ImageInput = Union[Image.Image, np.ndarray, torch.Tensor]
Box = tuple[float, float, float, float]  # (x1, y1, x2, y2), end-exclusive pixels


def to_rgb_array(image: ImageInput) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image, a uint8 array (H, W, 3), or a tensor (3, H, W) that is
    uint8 or float in [0, 1] (rounded as saving a PNG would)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        from edit_rl.consistency.images import to_uint8_chw

        return to_uint8_chw(image).permute(1, 2, 0).numpy()
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected a uint8 array (H, W, 3), got {array.dtype} {array.shape}")
    return array


@dataclass(frozen=True)
class ParsedObject:
    """A recognised object, its pixel box and how well its best template fits."""

    obj: SceneObject
    box: Box
    iou: float


@dataclass(frozen=True)
class Blob:
    """A junk component: its colour name (or "unknown"), pixel count and cell (by centroid)."""

    color: str
    pixels: int
    cell: Cell


@dataclass(frozen=True)
class ParsedScene:
    background: str
    objects: tuple[ParsedObject, ...]
    junk: tuple[Blob, ...]

    @property
    def scene(self) -> Scene:
        return Scene(self.background, tuple(o.obj for o in self.objects))

    @property
    def junk_pixels(self) -> int:
        return sum(b.pixels for b in self.junk)

    def junk_at(self, cell: Cell) -> tuple[Blob, ...]:
        return tuple(b for b in self.junk if b.cell == cell)


def quantize(rgb: np.ndarray) -> np.ndarray:
    """(H, W) palette indices (into ``PALETTE``'s order), -1 for unknown pixels."""
    distance = np.linalg.norm(rgb.astype(np.float32)[:, :, None, :] - _COLORS[None, None], axis=-1)
    labels = distance.argmin(-1)
    labels[distance.min(-1) > MAX_COLOR_DISTANCE] = -1
    return labels


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, each as an (N, 2) array of (y, x)."""
    height, width = mask.shape
    seen = np.zeros_like(mask)
    out = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        stack, pixels = [(int(y0), int(x0))], []
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append(np.array(pixels))
    return out


def best_template(pixels: np.ndarray, geometry: Geometry) -> tuple[str, str, float]:
    """(shape, size, IoU) of the template that best overlaps a component: each shape/size
    template is centred on the component's bounding box, then shifted by up to one pixel each way."""
    y0, x0 = pixels.min(0)
    height, width = pixels.max(0) + 1 - (y0, x0)
    pad = geometry.object_px("large") + 1  # room for every template position around the box
    canvas = np.zeros((height + 2 * pad, width + 2 * pad), dtype=bool)
    canvas[pixels[:, 0] - y0 + pad, pixels[:, 1] - x0 + pad] = True
    count = len(pixels)
    best = ("", "", 0.0)
    for size in SIZES:
        px = geometry.object_px(size)
        top, left = pad + (height - px) // 2, pad + (width - px) // 2
        for shape in SHAPES:
            template = shape_mask(shape, px)
            area = int(template.sum())
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    window = canvas[top + dy:top + dy + px, left + dx:left + dx + px]
                    inter = int(window[template].sum())
                    iou = inter / (count + area - inter)
                    if iou > best[2]:
                        best = (shape, size, iou)
    return best


def parse_image(image: ImageInput) -> ParsedScene:
    """Parse an image of this world (square, 32-64 px; the geometry follows from its size)."""
    rgb = to_rgb_array(image)
    if rgb.shape[0] != rgb.shape[1]:
        raise ValueError(f"images of the synthetic world are square, got {rgb.shape[1]}x{rgb.shape[0]}")
    geometry = Geometry(rgb.shape[0])
    labels = quantize(rgb)
    known = labels[labels >= 0]
    background_index = int(np.bincount(known, minlength=len(_NAMES)).argmax()) if known.size else 0
    objects: list[ParsedObject] = []
    junk: list[Blob] = []
    for index in np.unique(labels):
        if index == background_index:
            continue
        color = _NAMES[index] if index >= 0 else UNKNOWN
        for pixels in components(labels == index):
            cy, cx = pixels.mean(0)
            cell = geometry.cell_of(float(cy), float(cx))
            if color in OBJECT_COLORS:
                shape, size, iou = best_template(pixels, geometry)
                if iou >= MIN_SHAPE_IOU:
                    (y0, x0), (y1, x1) = pixels.min(0), pixels.max(0) + 1
                    obj = SceneObject(cell[0], cell[1], ObjectDesc(size, color, shape))
                    objects.append(ParsedObject(obj, (float(x0), float(y0), float(x1), float(y1)), iou))
                    continue
            junk.append(Blob(color, len(pixels), cell))
    objects.sort(key=lambda o: o.obj)
    return ParsedScene(_NAMES[background_index], tuple(objects), tuple(junk))
