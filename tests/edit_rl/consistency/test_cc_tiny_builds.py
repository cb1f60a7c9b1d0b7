"""The tiny Grounding DINO / DINOv3 builds: registered names, the real classes, deterministic
weights (edit_rl/models/tiny/grounding_dino.py, dinov3.py)."""

import torch
from transformers import AutoImageProcessor, AutoModel, DINOv3ViTImageProcessor, DINOv3ViTModel

from edit_rl.models import TINY_MODELS, resolve_model
from edit_rl.models.tiny.dinov3 import build_tiny_dinov3
from edit_rl.models.tiny.grounding_dino import build_tiny_grounding_dino


def test_registered_and_loaded_by_the_real_auto_classes():
    assert {"tiny/grounding-dino", "tiny/dinov3"} <= set(TINY_MODELS)
    folder = resolve_model("tiny/dinov3")
    model = AutoModel.from_pretrained(folder)
    assert isinstance(model, DINOv3ViTModel)
    assert isinstance(AutoImageProcessor.from_pretrained(folder), DINOv3ViTImageProcessor)
    c = model.config
    assert (c.patch_size, c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_register_tokens) == \
        (16, 64, 2, 4, 4)


def test_builds_are_deterministic_and_leave_the_global_rng_alone(tmp_path):
    state = torch.random.get_rng_state()
    for build in (build_tiny_dinov3, build_tiny_grounding_dino):
        build(tmp_path / f"{build.__name__}-a")
        build(tmp_path / f"{build.__name__}-b")
        a = (tmp_path / f"{build.__name__}-a" / "model.safetensors").read_bytes()
        b = (tmp_path / f"{build.__name__}-b" / "model.safetensors").read_bytes()
        assert a == b
    assert torch.equal(torch.random.get_rng_state(), state)
    build_tiny_dinov3(tmp_path / "seed1", seed=1)
    assert (tmp_path / "seed1" / "model.safetensors").read_bytes() != \
        (tmp_path / "build_tiny_dinov3-a" / "model.safetensors").read_bytes()
