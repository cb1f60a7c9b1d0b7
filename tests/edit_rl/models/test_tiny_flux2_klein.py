"""The tiny FLUX.2-klein build: deterministic, FLUX.2-shaped, loadable by diffusers by folder."""

import json
from pathlib import Path

import pytest
import torch
from diffusers import Flux2KleinPipeline
from safetensors.torch import load_file

from edit_rl.models.registry import resolve_model
from edit_rl.models.tiny.flux2_klein import build_tiny_flux2_klein

WEIGHT_FILES = ["transformer/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder/model.safetensors"]


@pytest.fixture(scope="module")
def cached() -> Path:
    return Path(resolve_model("tiny/flux2-klein"))


@pytest.fixture(scope="module")
def pipe(cached) -> Flux2KleinPipeline:
    return Flux2KleinPipeline.from_pretrained(str(cached))


def test_building_twice_gives_identical_weights_configs_and_tokenizer(cached, tmp_path):
    torch.manual_seed(123)
    state_before = torch.random.get_rng_state()
    build_tiny_flux2_klein(tmp_path / "again")
    assert torch.equal(torch.random.get_rng_state(), state_before)  # the global RNG is left alone
    for name in WEIGHT_FILES:
        a, b = load_file(cached / name), load_file(tmp_path / "again" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for name in ("transformer/config.json", "vae/config.json", "scheduler/scheduler_config.json",
                 "model_index.json", "tokenizer/tokenizer.json"):
        assert json.loads((cached / name).read_text()) == json.loads((tmp_path / "again" / name).read_text()), name


def test_loads_with_from_pretrained_and_has_flux2_shapes(pipe):
    t, vae, text = pipe.transformer.config, pipe.vae.config, pipe.text_encoder.config
    assert type(pipe.text_encoder).__name__ == "Qwen3ForCausalLM" and not pipe.config.is_distilled
    assert vae.latent_channels == 32 and t.in_channels == 4 * 32 and not t.guidance_embeds
    assert sum(t.axes_dims_rope) == t.attention_head_dim and len(t.axes_dims_rope) == 4
    assert t.joint_attention_dim == 3 * text.hidden_size and text.num_hidden_layers > 27
    assert pipe.vae_scale_factor == 8
    bn = pipe.vae.bn  # non-trivial latent statistics, so a missing normalisation shows
    assert bn.running_mean.shape == (128,) and bn.running_mean.abs().max() > 0.3
    assert bn.running_var.min() < 0.5 and bn.running_var.max() > 2
    s = pipe.scheduler.config
    assert s.use_dynamic_shifting and s.time_shift_type == "exponential" and not s.shift_terminal


def test_tokenizer_uses_the_qwen3_chat_template_without_thinking(pipe):
    text = pipe.tokenizer.apply_chat_template([{"role": "user", "content": "add a hat"}], tokenize=False,
                                              add_generation_prompt=True, enable_thinking=False)
    assert text == "<|im_start|>user\nadd a hat<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    ids = pipe.tokenizer(text, padding="max_length", max_length=40).input_ids
    assert len(ids) == 40 and ids[-1] == pipe.tokenizer.pad_token_id
    assert pipe.tokenizer.convert_tokens_to_ids("<|im_start|>") in ids
    assert pipe.text_encoder.config.vocab_size == len(pipe.tokenizer)
