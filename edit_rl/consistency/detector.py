"""Grounding DINO boxes for EdiVal-CC (EdiVal ``detector/consistency_detector.py``
``_detect_multiple_objects_from_img``), through transformers' zero-shot detection classes.

The reference runs the original GroundingDINO repo (SwinT-OGC) with its PIL transforms
(shortest edge 800, longest 1333, ImageNet mean/std) and ``predict`` with box and text thresholds
0.35. Here ``AutoProcessor`` (PIL backend, the same resize and normalisation) and
``AutoModelForZeroShotObjectDetection`` load `IDEA-Research/grounding-dino-tiny` or a local
"tiny/grounding-dino" build by name; ``post_process_grounded_object_detection`` applies the same
thresholds (a query is kept if its best text-token probability exceeds the box threshold) and
returns pixel boxes.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor, PreTrainedModel, ProcessorMixin

from edit_rl.consistency.images import to_pil
from edit_rl.models.registry import resolve_model

DEFAULT_BOX_THRESHOLD = 0.35
DEFAULT_TEXT_THRESHOLD = 0.35


def detection_prompt(objects: Sequence[str]) -> str:
    """Grounding DINO caption "obj1 . obj2 .": each name stripped, lower-cased and with its own
    periods removed, joined by " . " and ended by " ." (EdiVal ``_detect_multiple_objects_from_img``)."""
    names = [name.strip().lower().replace(".", "") for name in objects]
    return " . ".join(names) + " ."


class GroundingDinoDetector:
    """:class:`~edit_rl.consistency.interfaces.Detector` on a transformers Grounding DINO."""

    def __init__(self, model: PreTrainedModel, processor: ProcessorMixin,
                 box_threshold: float = DEFAULT_BOX_THRESHOLD, text_threshold: float = DEFAULT_TEXT_THRESHOLD,
                 batch_size: int = 16) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device = "cpu",
                        box_threshold: float = DEFAULT_BOX_THRESHOLD,
                        text_threshold: float = DEFAULT_TEXT_THRESHOLD,
                        batch_size: int = 16) -> "GroundingDinoDetector":
        """Load a hub id, a local folder or a "tiny/..." name (built locally on first use)."""
        path = resolve_model(name_or_path)
        processor = AutoProcessor.from_pretrained(path, backend="pil")
        model = AutoModelForZeroShotObjectDetection.from_pretrained(path).to(device)
        return cls(model, processor, box_threshold, text_threshold, batch_size)

    @torch.inference_mode()
    def detect(self, images: Sequence[Tensor], objects: Sequence[Sequence[str]]) -> list[Tensor]:
        """Boxes (K_i, 4) in pixels of ``images[i]`` for the prompt of ``objects[i]``, clipped to
        the image (the reference clamps when it crops and masks; same integer pixels).

        Images are grouped by size and each group chunked into forwards of ``batch_size``: the
        processor would pad a mixed-size batch and the Swin backbone sees the padding, so mixed
        sizes would change the boxes (the reference detects one image at a time, unpadded).
        Prompts of a chunk are padded to a common length (masked; the boxes do not change).
        """
        if len(images) != len(objects):
            raise ValueError(f"{len(images)} images but {len(objects)} object lists")
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault((int(image.shape[1]), int(image.shape[2])), []).append(i)
        boxes: list[Tensor] = [torch.zeros(0, 4)] * len(images)
        for (height, width), indices in by_size.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                found = self._forward([images[i] for i in chunk], [objects[i] for i in chunk], height, width)
                for i, image_boxes in zip(chunk, found):
                    boxes[i] = image_boxes
        return boxes

    def _forward(self, images: Sequence[Tensor], objects: Sequence[Sequence[str]],
                 height: int, width: int) -> list[Tensor]:
        """One forward over same-size images; post-processing to clipped pixel boxes."""
        device = next(self.model.parameters()).device
        inputs = self.processor(images=[to_pil(image) for image in images],
                                text=[detection_prompt(names) for names in objects],
                                padding=True, return_tensors="pt").to(device)
        outputs = self.model(**inputs)
        results = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[(height, width)] * len(images))
        limit = torch.tensor([width, height, width, height], dtype=torch.float32)
        return [torch.minimum(result["boxes"].float().cpu().clamp(min=0.0), limit) for result in results]
