"""What EdiVal-CC needs from a detector and a feature extractor, nothing more.

The real pair is Grounding DINO (:mod:`edit_rl.consistency.detector`) and DINOv3
(:mod:`edit_rl.consistency.features`); any other pair with these two methods plugs into the same
code path (:class:`edit_rl.consistency.edival_cc.EdivalCC`). Both take a whole batch per call and
are expected to chunk it into forward passes themselves.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


class Detector(Protocol):
    def detect(self, images: Sequence[Tensor], objects: Sequence[Sequence[str]]) -> list[Tensor]:
        """Boxes of ``objects[i]`` found in ``images[i]`` (uint8 (3, H, W)): one float tensor
        (K_i, 4) per image, (x1, y1, x2, y2) in that image's pixel coordinates (K_i may be 0)."""
        ...


@dataclass(frozen=True)
class Features:
    """Per-image global token (B, D) and patch tokens on their spatial grid (B, Hp, Wp, D)."""

    cls: Tensor
    patches: Tensor


class FeatureExtractor(Protocol):
    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) every image is resized to before patching; the patch grid tiles it."""
        ...

    def extract(self, images: Sequence[Tensor]) -> Features:
        """Features of uint8 (3, H, W) images of any sizes (each is resized to ``input_size``)."""
        ...
