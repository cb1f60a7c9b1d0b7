"""A tiny random-weight FLUX.2-klein-base pipeline folder, built deterministically.

Same component classes and folder layout as ``black-forest-labs/FLUX.2-klein-base-4B`` / ``-9B``
(transformer ``Flux2Transformer2DModel``, vae ``AutoencoderKLFlux2``, text_encoder
``Qwen3ForCausalLM``, tokenizer ``Qwen2TokenizerFast``, scheduler, ``is_distilled: false``), written
by ``Flux2KleinPipeline.save_pretrained`` so that ``Flux2KleinPipeline.from_pretrained(folder)`` and
the per-component ``from_pretrained(folder, subfolder=...)`` calls load it. Kept from the real
models: 32 latent channels, an x8 VAE whose 2x2 patches give 128-channel tokens, the VAE's
BatchNorm latent statistics (set to non-trivial values here, the real ones are learnt), no guidance
embedding, rope with four axes summing to the head dim, a Qwen3 text encoder deep enough for the
pipeline's default hidden-state layers (9, 18, 27) whose three outputs are concatenated
(joint_attention_dim = 3 x hidden), a Qwen3 chat template with ``enable_thinking``, and the
scheduler's exponential dynamic shifting (mu comes from ``compute_empirical_mu`` in the pipeline).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel
from transformers import Qwen2Tokenizer, Qwen3Config, Qwen3ForCausalLM

from edit_rl.models.tiny.qwen_bpe_tokenizer import train_qwen_bpe_tokenizer
from edit_rl.models.tiny.random_init import scale_linear_weights_, seeded

LATENT_CHANNELS = 32
TEXT_HIDDEN = 16
TEXT_LAYERS = 28  # the pipeline reads hidden_states[9], [18], [27]: 27 must be an inner layer
TEXT_OUT_LAYERS = (9, 18, 27)
SEED = 20261123

# Qwen3's chat template, reduced to plain messages; with enable_thinking=False the generation
# prompt ends with an empty think block, as the real template does.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
_CORPUS = """make the sky purple. add a hat to the dog. remove the tree on the left. turn the cat into a tiger.
change the color of the car to red. zoom out and show the whole street. make it night with a full moon.
replace the background with a beach. add snow on the ground. the person now wears sunglasses.
user assistant system"""


def tiny_tokenizer() -> Qwen2Tokenizer:
    """Byte-level BPE (400 entries) on a few edit instructions, Qwen3 chat template."""
    lines = [line for line in _CORPUS.splitlines() if line]
    return train_qwen_bpe_tokenizer(lines * 4, vocab_size=400, chat_template=CHAT_TEMPLATE, model_max_length=40960)


def tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Qwen3ForCausalLM:
    """Qwen3 with hidden 16, 28 layers of 2 heads (dim 8, 1 KV head)."""
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=32, num_hidden_layers=TEXT_LAYERS,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, max_position_embeddings=1024,
        rms_norm_eps=1e-6, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, initializer_range=0.2,
    )
    return Qwen3ForCausalLM(config)


def tiny_transformer() -> Flux2Transformer2DModel:
    """1 double + 2 single blocks, 2 heads of dim 16, rope axes (4, 4, 4, 4), no guidance embedding;
    linear weights x2 (`scale_linear_weights_`)."""
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=len(TEXT_OUT_LAYERS) * TEXT_HIDDEN,
        timestep_guidance_channels=256,
        mlp_ratio=3.0,
        axes_dims_rope=(4, 4, 4, 4),
        rope_theta=2000,
        guidance_embeds=False,
    )
    scale_linear_weights_(transformer, 2.0)
    return transformer


def tiny_vae() -> AutoencoderKLFlux2:
    """Four resolution levels (x8), 32 latent channels, 2x2 patch BatchNorm statistics.

    A fresh BatchNorm has mean 0 / variance 1, which would hide a missing normalisation: the running
    statistics get seeded values (mean in [-0.5, 0.5], variance in [0.25, 4]).
    """
    vae = AutoencoderKLFlux2(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, latent_channels=LATENT_CHANNELS,
        norm_num_groups=4, sample_size=64, patch_size=(2, 2),
    )
    channels = vae.bn.num_features
    vae.bn.running_mean.copy_(torch.rand(channels) - 0.5)
    vae.bn.running_var.copy_(4.0 ** (2 * torch.rand(channels) - 1))
    return vae


def tiny_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """FLUX.2's scheduler settings: exponential dynamic shifting (mu given by the pipeline)."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096, time_shift_type="exponential",
    )


def tiny_flux2_klein_pipeline(seed: int = SEED) -> Flux2KleinPipeline:
    """All components with seeded random weights (seed, seed + 1, ... per component), float32."""
    tokenizer = tiny_tokenizer()
    return Flux2KleinPipeline(
        scheduler=tiny_scheduler(),
        vae=seeded(seed + 1, tiny_vae),
        text_encoder=seeded(seed + 2, lambda: tiny_text_encoder(tokenizer)),
        tokenizer=tokenizer,
        transformer=seeded(seed, tiny_transformer),
        is_distilled=False,
    )


def build_tiny_flux2_klein(folder: Path) -> None:
    """Write the tiny FLUX.2-klein pipeline into ``folder`` (the registry's builder for "tiny/flux2-klein")."""
    tiny_flux2_klein_pipeline().save_pretrained(str(folder))
