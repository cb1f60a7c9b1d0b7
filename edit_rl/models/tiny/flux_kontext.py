"""A tiny random-weight FLUX.1-Kontext-dev pipeline folder, built deterministically.

Same component classes and folder layout as ``black-forest-labs/FLUX.1-Kontext-dev`` (transformer,
vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, scheduler), written by
``FluxKontextPipeline.save_pretrained`` so that ``FluxKontextPipeline.from_pretrained(folder)`` and the
per-component ``from_pretrained(folder, subfolder=...)`` calls load it. The shapes that the
conditioning code depends on are the real ones: 16 latent channels, an x8 VAE, 64-channel packed
tokens (2x2 patches), a guidance embedding, rope axes summing to the head dim, CLIP pooled +
T5 sequence embeddings, and the real VAE shift / scaling factors and scheduler shift settings.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

from edit_rl.models.tiny.clip_t5_tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer

CLIP_HIDDEN = 32
T5_HIDDEN = 32
LATENT_CHANNELS = 16
# FLUX.1 VAE latent normalisation (FLUX.1-Kontext-dev vae/config.json).
VAE_SHIFT_FACTOR = 0.1159
VAE_SCALING_FACTOR = 0.3611
SEED = 20261122

M = TypeVar("M", bound=torch.nn.Module)


def _seeded(seed: int, make: Callable[[], M]) -> M:
    """Build a module with its default init under a fixed seed, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def tiny_transformer() -> FluxTransformer2DModel:
    """1 double + 2 single blocks, 2 heads of dim 16, rope axes (4, 6, 6) (sum = head dim), guidance."""
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=CLIP_HIDDEN,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    )


def tiny_vae() -> AutoencoderKL:
    """Four resolution levels (x8, like FLUX's), 16 latent channels, no quant convs, FLUX factors."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=VAE_SCALING_FACTOR,
        shift_factor=VAE_SHIFT_FACTOR,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_clip_text_encoder(vocab_size: int, bos_token_id: int, eos_token_id: int) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=CLIP_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=CLIP_HIDDEN,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
    )
    return CLIPTextModel(config)


def tiny_t5_text_encoder(vocab_size: int) -> T5EncoderModel:
    """T5 v1.1-style (gated GELU) encoder, like FLUX's T5-XXL."""
    config = T5Config(
        vocab_size=vocab_size,
        d_model=T5_HIDDEN,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5EncoderModel(config)


def tiny_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """FLUX.1-Kontext-dev's scheduler config: dynamic (exponential) shift, mu from 256 -> 0.5 to 4096 -> 1.15."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000,
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
        time_shift_type="exponential",
    )


def tiny_flux_kontext_pipeline(seed: int = SEED) -> FluxKontextPipeline:
    """All components with seeded random weights (seed, seed + 1, ... per component), float32."""
    tokenizer = tiny_clip_tokenizer()
    tokenizer_2 = tiny_t5_tokenizer()
    return FluxKontextPipeline(
        scheduler=tiny_scheduler(),
        vae=_seeded(seed + 1, tiny_vae),
        text_encoder=_seeded(seed + 2, lambda: tiny_clip_text_encoder(
            len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)),
        tokenizer=tokenizer,
        text_encoder_2=_seeded(seed + 3, lambda: tiny_t5_text_encoder(len(tokenizer_2))),
        tokenizer_2=tokenizer_2,
        transformer=_seeded(seed, tiny_transformer),
    )


def build_tiny_flux_kontext(folder: Path) -> None:
    """Write the tiny FLUX.1-Kontext pipeline into ``folder`` (the registry's builder for "tiny/flux-kontext")."""
    tiny_flux_kontext_pipeline().save_pretrained(str(folder))
