"""Symbolic scene -> crisp RGB pixels (no anti-aliasing: every pixel is a palette colour)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from edit_rl.data.chain import encode_png
from edit_rl.synthetic.world import PALETTE, Geometry, Scene


@lru_cache(maxsize=None)
def shape_mask(shape: str, px: int) -> np.ndarray:
    """Boolean (px, px) mask of a shape in its bounding square (px odd, centre c = (px-1)/2):

    * square: every pixel;
    * circle: pixel centres within px/2 of the centre, (i-c)^2 + (j-c)^2 <= (px/2)^2;
    * triangle: apex up, row r spans columns c - floor((r+1)/2) .. c + floor((r+1)/2), so the
      last row is the full base.
    """
    if px < 3 or px % 2 == 0:
        raise ValueError(f"object side must be odd and >= 3, got {px}")
    i, j = np.mgrid[0:px, 0:px]
    c = (px - 1) / 2
    if shape == "square":
        mask = np.ones((px, px), dtype=bool)
    elif shape == "circle":
        mask = (i - c) ** 2 + (j - c) ** 2 <= (px / 2) ** 2
    elif shape == "triangle":
        mask = np.abs(j - c) <= (i + 1) // 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def render(scene: Scene, geometry: Geometry = Geometry()) -> np.ndarray:
    """uint8 (H, W, 3) image of a scene: the background colour, then each object's mask in its
    colour, centred on its cell's centre pixel."""
    size = geometry.image_size
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = PALETTE[scene.background]
    for obj in scene.objects:
        px = geometry.object_px(obj.desc.size)
        cy, cx = geometry.centre(obj.cell)
        top, left = cy - (px - 1) // 2, cx - (px - 1) // 2
        region = image[top:top + px, left:left + px]
        region[shape_mask(obj.desc.shape, px)] = PALETTE[obj.desc.color]
    return image


def render_pil(scene: Scene, geometry: Geometry = Geometry()) -> Image.Image:
    return Image.fromarray(render(scene, geometry), mode="RGB")


def render_png(scene: Scene, geometry: Geometry = Geometry()) -> bytes:
    return encode_png(render_pil(scene, geometry))
