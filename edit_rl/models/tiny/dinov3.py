"""A tiny random-weight DINOv3 ViT saved as a local folder that loads like
`facebook/dinov3-vitb16-pretrain-lvd1689m` (``AutoModel`` + ``AutoImageProcessor``).

Same token layout as the real model: patch 16 and 4 register tokens, so ``last_hidden_state``
is [CLS, 4 registers, patches]. The processor is transformers' own DINOv3 one (torchvision
backend; the venv's torchvision import hook makes its transforms work on CPU): rescale, resize
to 224x224 bilinear with antialias, ImageNet mean/std.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel


def tiny_dinov3_config() -> DINOv3ViTConfig:
    """Patch 16, hidden 64, 2 layers, 4 heads, 4 register tokens (the real ViT-B/16: 768, 12, 12, 4)."""
    return DINOv3ViTConfig(patch_size=16, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_register_tokens=4, image_size=224)


def build_tiny_dinov3(folder: str | Path, seed: int = 0) -> None:
    """Write model and image processor to ``folder`` (the registry's builder signature)."""
    folder = Path(folder)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
        torch.manual_seed(seed)
        model = DINOv3ViTModel(tiny_dinov3_config()).eval()
    model.save_pretrained(folder)
    DINOv3ViTImageProcessor().save_pretrained(folder)
