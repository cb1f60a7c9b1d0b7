"""The real architectures' configs, built on the meta device (no weights, no hub).

Each config is copied from its model's published ``config.json`` (repository named beside it);
`build_meta` instantiates the class the project loads (the tiny builders in edit_rl/models/tiny/
use the same classes) with ``torch.device("meta")``, so a 12B model costs no memory, and caches
it per process. `component_names` says which parts each editor family has.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

# black-forest-labs/FLUX.1-Kontext-dev transformer/config.json
FLUX_KONTEXT_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56))
# black-forest-labs/FLUX.1-Kontext-dev vae/config.json
FLUX_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=16, norm_num_groups=32, sample_size=1024, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False)
# google/t5-v1_1-xxl config.json (FLUX.1-Kontext-dev text_encoder_2)
T5_XXL: dict[str, Any] = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
    relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
    dropout_rate=0.0, tie_word_embeddings=False)
# openai/clip-vit-large-patch14 text_config (FLUX.1-Kontext-dev text_encoder)
CLIP_L_TEXT: dict[str, Any] = dict(
    vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
    max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
# black-forest-labs/FLUX.2-klein-base-9B transformer/config.json
FLUX2_KLEIN_9B_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1, in_channels=128, num_layers=8, num_single_layers=24, attention_head_dim=128,
    num_attention_heads=32, joint_attention_dim=12288, timestep_guidance_channels=256, mlp_ratio=3.0,
    axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, guidance_embeds=False)
# black-forest-labs/FLUX.2-klein-base-9B vae/config.json (AutoencoderKLFlux2's defaults)
FLUX2_VAE: dict[str, Any] = dict(block_out_channels=(128, 256, 512, 512), latent_channels=32, layers_per_block=2,
                                 patch_size=(2, 2))
# Qwen/Qwen3-8B config.json (FLUX.2-klein-9B text_encoder, Qwen3ForCausalLM)
QWEN3_8B: dict[str, Any] = dict(
    vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rms_norm_eps=1e-6,
    tie_word_embeddings=False)
# Qwen/Qwen-Image-Edit transformer/config.json
QWEN_IMAGE_TRANSFORMER: dict[str, Any] = dict(
    patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128, num_attention_heads=24,
    joint_attention_dim=3584, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
# Qwen/Qwen-Image-Edit vae/config.json
QWEN_IMAGE_VAE: dict[str, Any] = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                      temperal_downsample=[False, True, True])
# Qwen/Qwen2.5-VL-7B-Instruct config.json (Qwen-Image-Edit text_encoder)
QWEN25_VL_7B: dict[str, Any] = dict(
    text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                     rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0,
                                                         "mrope_section": [16, 24, 24]}),
    vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_channels=3,
                       patch_size=14, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=3584,
                       window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
    tie_word_embeddings=False)
# Qwen/Qwen3-VL-8B-Instruct config.json (the judge)
QWEN3_VL_8B: dict[str, Any] = dict(
    text_config=dict(vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
                     num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                     rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                                                         "mrope_section": [24, 20, 20], "mrope_interleaved": True}),
    vision_config=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, in_channels=3,
                       patch_size=16, spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=4096,
                       num_position_embeddings=2304, deepstack_visual_indexes=[8, 16, 24]),
    tie_word_embeddings=False)

# IDEA-Research/grounding-dino-tiny config.json equals transformers' GroundingDinoConfig defaults
GROUNDING_DINO_TINY: dict[str, Any] = {}
# facebook/dinov3-vitb16-pretrain-lvd1689m config.json
DINOV3_VITB16: dict[str, Any] = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                     num_attention_heads=12, patch_size=16, num_register_tokens=4)

# Editor family -> its components (what a rollout worker loads); the learner needs the transformer only.
EDITOR_COMPONENTS: dict[str, tuple[str, ...]] = {
    "flux_kontext": ("flux_kontext_transformer", "t5_xxl", "clip_l_text", "flux_vae"),
    "flux2_klein": ("flux2_klein_transformer", "qwen3_8b", "flux2_vae"),
    "qwen_image_edit": ("qwen_image_transformer", "qwen25_vl_7b", "qwen_image_vae"),
}
TRANSFORMER_OF: dict[str, str] = {family: parts[0] for family, parts in EDITOR_COMPONENTS.items()}
VAE_OF: dict[str, str] = {family: parts[-1] for family, parts in EDITOR_COMPONENTS.items()}
JUDGE_MODELS: dict[str, str] = {"Qwen/Qwen3-VL-8B-Instruct": "qwen3_vl_8b"}
CONSISTENCY_MODELS: dict[str, str] = {"IDEA-Research/grounding-dino-tiny": "grounding_dino_tiny",
                                      "facebook/dinov3-vitb16-pretrain-lvd1689m": "dinov3_vitb16"}


# component -> (library, model class, config class or None for diffusers' keyword configs, real config)
COMPONENTS: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "flux_kontext_transformer": ("diffusers", "FluxTransformer2DModel", None, FLUX_KONTEXT_TRANSFORMER),
    "flux2_klein_transformer": ("diffusers", "Flux2Transformer2DModel", None, FLUX2_KLEIN_9B_TRANSFORMER),
    "qwen_image_transformer": ("diffusers", "QwenImageTransformer2DModel", None, QWEN_IMAGE_TRANSFORMER),
    "flux_vae": ("diffusers", "AutoencoderKL", None, FLUX_VAE),
    "flux2_vae": ("diffusers", "AutoencoderKLFlux2", None, FLUX2_VAE),
    "qwen_image_vae": ("diffusers", "AutoencoderKLQwenImage", None, QWEN_IMAGE_VAE),
    "t5_xxl": ("transformers", "T5EncoderModel", "T5Config", T5_XXL),
    "clip_l_text": ("transformers", "CLIPTextModel", "CLIPTextConfig", CLIP_L_TEXT),
    "qwen3_8b": ("transformers", "Qwen3ForCausalLM", "Qwen3Config", QWEN3_8B),
    "qwen25_vl_7b": ("transformers", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLConfig", QWEN25_VL_7B),
    "qwen3_vl_8b": ("transformers", "Qwen3VLForConditionalGeneration", "Qwen3VLConfig", QWEN3_VL_8B),
    "grounding_dino_tiny": ("transformers", "GroundingDinoForObjectDetection", "GroundingDinoConfig",
                            GROUNDING_DINO_TINY),
    "dinov3_vitb16": ("transformers", "DINOv3ViTModel", "DINOv3ViTConfig", DINOV3_VITB16),
}


def _make(name: str, **overrides: Any) -> nn.Module:
    """Instantiate component ``name`` (with config overrides, e.g. fewer layers) on the current device."""
    import diffusers
    import transformers

    if name not in COMPONENTS:
        raise KeyError(f"unknown component {name!r}")
    library, model_class, config_class, config = COMPONENTS[name]
    module = {"diffusers": diffusers, "transformers": transformers}[library]
    kwargs = {**config, **overrides}
    if config_class is None:
        return getattr(module, model_class)(**kwargs)
    return getattr(module, model_class)(getattr(module, config_class)(**kwargs))


@functools.lru_cache(maxsize=None)
def build_meta(name: str) -> nn.Module:
    """Component ``name`` at full size on the meta device (parameters have shapes, no storage); cached."""
    with torch.device("meta"):
        return _make(name)


def build_on(name: str, device: torch.device | str, dtype: torch.dtype, **overrides: Any) -> nn.Module:
    """Component ``name`` with random weights in ``dtype`` on ``device`` (the GPU check; fake-tensor traces)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return _make(name, **overrides)
    finally:
        torch.set_default_dtype(previous)


@functools.lru_cache(maxsize=None)
def parameter_count(name: str) -> int:
    return sum(p.numel() for p in build_meta(name).parameters())


def lora_parameters_of(model: nn.Module, rank: int, target_modules: tuple[str, ...]) -> int:
    """Parameters of one LoRA adapter of ``rank`` on every nn.Linear of ``model`` whose qualified name
    ends with one of ``target_modules`` (peft's suffix match): rank x (in + out) each."""
    total = 0
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear) and any(
                module_name == t or module_name.endswith("." + t) for t in target_modules):
            total += rank * (module.in_features + module.out_features)
    return total


def lora_parameter_count(name: str, rank: int, target_modules: tuple[str, ...]) -> int:
    """`lora_parameters_of` the full-size component ``name``."""
    return lora_parameters_of(build_meta(name), rank, target_modules)


def largest_block_parameters(name: str) -> int:
    """Parameters of the transformer's largest block (what FSDP2 all-gathers at once per block)."""
    model = build_meta(name)
    sizes = [sum(p.numel() for p in block.parameters())
             for attr in ("transformer_blocks", "single_transformer_blocks") if hasattr(model, attr)
             for block in getattr(model, attr)]
    return max(sizes)


def block_counts(name: str) -> tuple[int, int]:
    """(double-stream blocks, single-stream blocks) of a transformer component."""
    model = build_meta(name)
    return len(model.transformer_blocks), len(getattr(model, "single_transformer_blocks", []))
