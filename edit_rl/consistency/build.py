"""The consistency factory: a config names the detector and the features, this loads EdiVal-CC
(docs/algorithms.md §7).

Kept apart from ``edit_rl.consistency.edival_cc`` so that the shapes world's colour-segmentation
CC (``edit_rl.synthetic.cc``), which builds on EdivalCC, is one more choice here and not a circle.
"""
from __future__ import annotations

import torch

from edit_rl.config.schema import ConsistencyConfig
from edit_rl.consistency.detector import GroundingDinoDetector
from edit_rl.consistency.edival_cc import EdivalCC
from edit_rl.consistency.features import Dinov3Features
from edit_rl.synthetic.cc import synthetic_cc


def build_consistency(config: ConsistencyConfig, device: str | torch.device = "cpu") -> EdivalCC:
    """Grounding DINO + DINOv3 loaded by name (hub ids, folders or "tiny/..." names);
    ``detector: synthetic`` plugs in the shapes world's colour segmentation and fixed features."""
    if config.detector == "synthetic":
        return synthetic_cc()
    detector = GroundingDinoDetector.from_pretrained(
        config.detector, device=device, box_threshold=config.box_threshold,
        text_threshold=config.text_threshold, batch_size=config.batch_size)
    features = Dinov3Features.from_pretrained(config.features, device=device, batch_size=config.batch_size)
    return EdivalCC(detector, features, config.image_size)
