"""The tiny FLUX.1-Kontext build: deterministic, FLUX-shaped, loadable by diffusers by folder."""

import json
from pathlib import Path

import pytest
import torch
from diffusers import FluxKontextPipeline
from safetensors.torch import load_file

from edit_rl.models.registry import resolve_model
from edit_rl.models.tiny.flux_kontext import build_tiny_flux_kontext

WEIGHT_FILES = ["transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors", "text_encoder_2/model.safetensors"]


@pytest.fixture(scope="module")
def cached() -> Path:
    return Path(resolve_model("tiny/flux-kontext"))


def test_building_twice_gives_identical_weights_and_configs(cached, tmp_path):
    torch.manual_seed(123)
    state_before = torch.random.get_rng_state()
    build_tiny_flux_kontext(tmp_path / "again")
    assert torch.equal(torch.random.get_rng_state(), state_before)  # the global RNG is left alone
    for name in WEIGHT_FILES:
        a, b = load_file(cached / name), load_file(tmp_path / "again" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for sub in ("transformer", "vae", "scheduler"):
        config = "scheduler_config.json" if sub == "scheduler" else "config.json"
        assert json.loads((cached / sub / config).read_text()) == json.loads((tmp_path / "again" / sub / config).read_text())


def test_loads_with_from_pretrained_and_has_flux_shapes(cached):
    pipe = FluxKontextPipeline.from_pretrained(str(cached))
    t, vae = pipe.transformer.config, pipe.vae.config
    assert t.in_channels == 64 and vae.latent_channels == 16 and t.guidance_embeds
    assert sum(t.axes_dims_rope) == t.attention_head_dim and all(a % 2 == 0 for a in t.axes_dims_rope)
    assert t.joint_attention_dim == pipe.text_encoder_2.config.d_model
    assert t.pooled_projection_dim == pipe.text_encoder.config.hidden_size
    assert pipe.vae_scale_factor == 8
    assert (vae.shift_factor, vae.scaling_factor) == (0.1159, 0.3611)
    s = pipe.scheduler.config
    assert s.use_dynamic_shifting and s.time_shift_type == "exponential"
    assert (s.base_image_seq_len, s.max_image_seq_len, s.base_shift, s.max_shift) == (256, 4096, 0.5, 1.15)


def test_tokenizers_pad_and_end_like_the_real_ones(cached):
    pipe = FluxKontextPipeline.from_pretrained(str(cached))
    clip = pipe.tokenizer("a red cat", padding="max_length", max_length=77).input_ids
    assert len(clip) == 77 and clip[0] == pipe.tokenizer.bos_token_id and clip[10] == pipe.tokenizer.eos_token_id
    assert pipe.text_encoder.config.eos_token_id == pipe.tokenizer.eos_token_id == len(pipe.tokenizer) - 1
    t5 = pipe.tokenizer_2("a red cat", padding="max_length", max_length=16).input_ids
    assert len(t5) == 16 and t5[t5.index(1) + 1:] == [0] * (15 - t5.index(1))  # </s> then <pad>
    assert pipe.tokenizer_2.unk_token_id not in t5
