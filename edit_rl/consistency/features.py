"""DINOv3 features for EdiVal-CC: the CLS token and the patch tokens on their grid
(EdiVal ``detector/consistency_detector.py`` ``_calculate_dinov3_similarity`` and
``_calculate_background_consistency_dino``, model `facebook/dinov3-vitb16-pretrain-lvd1689m`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import AutoImageProcessor, AutoModel, PreTrainedModel
from transformers.image_processing_utils import BaseImageProcessor

from edit_rl.consistency.interfaces import Features
from edit_rl.models.registry import resolve_model


def split_tokens(last_hidden_state: Tensor, num_register_tokens: int,
                 grid: tuple[int, int]) -> Features:
    """Split a DINOv3 ``last_hidden_state`` (B, 1 + R + Hp*Wp, D), laid out as
    [CLS, R register tokens, patches in row-major order], into CLS (B, D) and patches
    (B, Hp, Wp, D). Patch tokens start at index 1 + num_register_tokens.

    The EdiVal reference takes every token after CLS as a patch (``feats[:, 1:]``). With the HF
    DINOv3 checkpoints (R = 4) that mixes the 4 register tokens into the object term's patch mean
    and shifts the background mask by 4 positions against the tokens (its grid is then guessed
    from a token count that is not Hp*Wp). Here registers are dropped and the grid comes from
    the input size, so patch (i, j) is the token of pixels [16i, 16i+16) x [16j, 16j+16).
    """
    batch, length, dim = last_hidden_state.shape
    height, width = grid
    start = 1 + num_register_tokens
    if length - start != height * width:
        raise ValueError(f"{length} tokens do not hold CLS + {num_register_tokens} registers + "
                         f"a {height}x{width} patch grid")
    patches = last_hidden_state[:, start:].reshape(batch, height, width, dim)
    return Features(cls=last_hidden_state[:, 0], patches=patches)


class Dinov3Features:
    """:class:`~edit_rl.consistency.interfaces.FeatureExtractor` on a transformers DINOv3 ViT."""

    def __init__(self, model: PreTrainedModel, processor: BaseImageProcessor, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        size = processor.size
        if not processor.do_resize or size.get("height") is None or size.get("width") is None:
            raise ValueError(f"the image processor must resize to a fixed height and width, got {size}")
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size
        self.patch_size = int(model.config.patch_size)
        self.num_register_tokens = int(getattr(model.config, "num_register_tokens", 0))
        self._input_size = (int(size["height"]), int(size["width"]))

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device = "cpu",
                        batch_size: int = 32) -> "Dinov3Features":
        """Load a hub id, a local folder or a "tiny/..." name (built locally on first use)."""
        path = resolve_model(name_or_path)
        processor = AutoImageProcessor.from_pretrained(path)
        model = AutoModel.from_pretrained(path).to(device)
        return cls(model, processor, batch_size)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    @torch.inference_mode()
    def extract(self, images: Sequence[Tensor]) -> Features:
        """CLS and patch-grid features of uint8 (3, H, W) images of any sizes (the processor resizes
        each to ``input_size``); one forward per chunk of ``batch_size`` images."""
        if len(images) == 0:
            raise ValueError("no images to extract features from")
        device = next(self.model.parameters()).device
        cls_parts, patch_parts = [], []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start:start + self.batch_size])
            pixels = self.processor(images=chunk, input_data_format="channels_first",
                                    return_tensors="pt")["pixel_values"].to(device)
            hidden = self.model(pixel_values=pixels).last_hidden_state.float().cpu()
            grid = (pixels.shape[-2] // self.patch_size, pixels.shape[-1] // self.patch_size)
            features = split_tokens(hidden, self.num_register_tokens, grid)
            cls_parts.append(features.cls)
            patch_parts.append(features.patches)
        return Features(cls=torch.cat(cls_parts), patches=torch.cat(patch_parts))
