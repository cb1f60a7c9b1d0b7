"""Shared fixtures for the EdiVal-CC tests: the tiny models (built once, loaded by name exactly as
the real ones are), a local 0-layer DINOv3, and a box-injecting detector double."""

from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor
from transformers import DINOv3ViTImageProcessor, DINOv3ViTModel

from edit_rl.consistency import Dinov3Features, GroundingDinoDetector
from edit_rl.models.tiny.dinov3 import tiny_dinov3_config


class BoxDetector:
    """Test double of the Detector interface: fixed pixel boxes per object name, the same in every
    image; records (first pixel value of the image, object names) of each request."""

    def __init__(self, boxes: dict[str, list[list[float]]]) -> None:
        self.boxes = boxes
        self.requests: list[tuple[int, tuple[str, ...]]] = []
        self.calls = 0

    def detect(self, images: Sequence[Tensor], objects: Sequence[Sequence[str]]) -> list[Tensor]:
        self.calls += 1
        out = []
        for image, names in zip(images, objects):
            self.requests.append((int(image[0, 0, 0]), tuple(names)))
            found = [box for name in names for box in self.boxes.get(name, [])]
            out.append(torch.tensor(found, dtype=torch.float32).reshape(-1, 4))
        return out


@pytest.fixture
def box_detector() -> Callable[[dict[str, list[list[float]]]], BoxDetector]:
    return BoxDetector


@pytest.fixture(scope="session")
def tiny_features() -> Dinov3Features:
    """The tiny DINOv3 (2 layers, 4 registers), processor resizing to 224 like the real one."""
    return Dinov3Features.from_pretrained("tiny/dinov3")


@pytest.fixture(scope="session")
def fast_features(tiny_features) -> Dinov3Features:
    """The tiny DINOv3 with a processor resizing to 64x64 (16 patches, not 196): fast pair tests."""
    return Dinov3Features(tiny_features.model, DINOv3ViTImageProcessor(size={"height": 64, "width": 64}))


@pytest.fixture(scope="session")
def tiny_detector() -> GroundingDinoDetector:
    return GroundingDinoDetector.from_pretrained("tiny/grounding-dino")


@pytest.fixture(scope="session")
def local_features() -> Dinov3Features:
    """DINOv3 with 0 encoder layers and no resize of 64x64 inputs: patch token (i, j) depends on
    pixels [16i, 16i+16) x [16j, 16j+16) only, so changes can be placed exactly."""
    config = tiny_dinov3_config()
    config.num_hidden_layers = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = DINOv3ViTModel(config)
    return Dinov3Features(model, DINOv3ViTImageProcessor(size={"height": 64, "width": 64}))


@pytest.fixture
def base_image() -> Tensor:
    """A 64x64 uint8 noise image whose first pixel value is 7 (BoxDetector records it)."""
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    image[0, 0, 0] = 7
    return image
