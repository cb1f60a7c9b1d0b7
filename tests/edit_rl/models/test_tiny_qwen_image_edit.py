"""The tiny Qwen-Image-Edit build: deterministic, Qwen-Image-shaped, loadable by diffusers by folder."""

import json
from pathlib import Path

import pytest
import torch
from diffusers import QwenImageEditPipeline
from PIL import Image
from safetensors.torch import load_file

from edit_rl.models.registry import resolve_model
from edit_rl.models.tiny.qwen_image_edit import build_tiny_qwen_image_edit

WEIGHT_FILES = ["transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors"]


@pytest.fixture(scope="module")
def cached() -> Path:
    return Path(resolve_model("tiny/qwen-image-edit"))


@pytest.fixture(scope="module")
def pipe(cached) -> QwenImageEditPipeline:
    return QwenImageEditPipeline.from_pretrained(str(cached))


def test_building_twice_gives_identical_weights_configs_and_tokenizer(cached, tmp_path):
    torch.manual_seed(123)
    state_before = torch.random.get_rng_state()
    build_tiny_qwen_image_edit(tmp_path / "again")
    assert torch.equal(torch.random.get_rng_state(), state_before)
    for name in WEIGHT_FILES:
        a, b = load_file(cached / name), load_file(tmp_path / "again" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for name in ("transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json",
                 "model_index.json", "tokenizer/tokenizer.json", "text_encoder/config.json"):
        assert json.loads((cached / name).read_text()) == json.loads((tmp_path / "again" / name).read_text()), name


def test_loads_with_from_pretrained_and_has_qwen_image_shapes(pipe):
    t, vae = pipe.transformer.config, pipe.vae.config
    assert type(pipe.text_encoder).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert vae.z_dim == 16 and t.in_channels == 64 and t.out_channels == 16 and not t.guidance_embeds
    assert pipe.vae_scale_factor == 8 and len(vae.latents_mean) == len(vae.latents_std) == 16
    assert vae.latents_mean[0] == pytest.approx(-0.7571) and vae.latents_std[0] == pytest.approx(2.8184)
    assert sum(t.axes_dims_rope) == t.attention_head_dim
    assert t.joint_attention_dim == pipe.text_encoder.config.text_config.hidden_size
    s = pipe.scheduler.config
    assert s.use_dynamic_shifting and s.time_shift_type == "exponential"
    assert (s.base_image_seq_len, s.max_image_seq_len, s.base_shift, s.max_shift, s.shift_terminal) == \
        (256, 8192, 0.5, 0.9, 0.02)


def test_the_edit_template_prefix_is_the_pipelines_64_tokens_and_images_become_vision_tokens(pipe):
    prefix = pipe.prompt_template_encode.split("<|vision_start|>")[0]
    assert prefix.endswith("<|im_start|>user\n")
    assert len(pipe.tokenizer(prefix).input_ids) == pipe.prompt_template_encode_start_idx == 64
    text = pipe.prompt_template_encode.format("add a hat")
    inputs = pipe.processor(text=[text], images=[Image.new("RGB", (64, 64))], return_tensors="pt")
    image_pad = pipe.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert image_pad == pipe.text_encoder.config.image_token_id
    # 64x64 -> 56x56 (multiple of 28) -> 4x4 patches of 14 -> 2x2 merged tokens
    assert inputs["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert (inputs["input_ids"] == image_pad).sum() == 4
