"""A tiny random-weight Qwen-Image-Edit pipeline folder, built deterministically.

Same component classes and folder layout as ``Qwen/Qwen-Image-Edit`` (transformer
``QwenImageTransformer2DModel``, vae ``AutoencoderKLQwenImage``, text_encoder
``Qwen2_5_VLForConditionalGeneration``, tokenizer ``Qwen2Tokenizer``, processor ``Qwen2VLProcessor``,
scheduler), written by ``QwenImageEditPipeline.save_pretrained`` so that
``QwenImageEditPipeline.from_pretrained(folder)`` and the per-component ``from_pretrained(folder,
subfolder=...)`` calls load it. Kept from the real model: 16 latent channels with the real
per-channel latents_mean / latents_std, an x8 causal video VAE (3 temporal-downsampling flags),
64-channel packed tokens (2x2 patches), no guidance embedding, rope axes summing to the head dim,
a Qwen2.5-VL text encoder whose vision tokens come from a Qwen2-VL image processor (patch 14,
merge 2), the scheduler (dynamic exponential shift up to 8192 tokens, max_shift 0.9, terminal
sigma 0.02), and a tokenizer on which the pipeline's edit-template prefix (system prompt through
``<|im_start|>user\\n``) is 64 tokens, the drop index the pipeline hard-codes for the real tokenizer.
"""

from __future__ import annotations

from pathlib import Path

from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageEditPipeline,
    QwenImageTransformer2DModel,
)
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from edit_rl.models.tiny.qwen_bpe_tokenizer import train_qwen_bpe_tokenizer
from edit_rl.models.tiny.random_init import scale_linear_weights_, seeded

TEXT_HIDDEN = 32
LATENT_CHANNELS = 16
PATCH_SIZE = 14  # Qwen2.5-VL's vision patch
MERGE_SIZE = 2
MIN_PIXELS = 56 * 56  # the real processor's min_pixels
MAX_PIXELS = 112 * 112  # 16 vision tokens at most (the real one allows ~16k)
SEED = 20261124

# QwenImageEditPipeline.prompt_template_encode's system prompt (the part the pipeline drops).
EDIT_SYSTEM_PROMPT = (
    "Describe the key features of the input image (color, shape, size, texture, objects, background), then "
    "explain how the user's text instruction should alter or modify the image. Generate a new image that meets "
    "the user's requirements while maintaining consistency with the original input where appropriate."
)
CHAT_TEMPLATE = (  # Qwen2-VL style, images as <|vision_start|><|image_pad|><|vision_end|>
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}"
    "{%- for item in message['content'] %}{%- if item['type'] == 'image' %}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' }}{%- elif item['type'] == 'text' %}{{- item['text'] }}"
    "{%- endif %}{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_INSTRUCTIONS = """make the sky purple. add a hat to the dog. remove the tree on the left. turn the cat into a tiger.
change the color of the car to red. zoom out and show the whole street. make it night with a full moon.
system user assistant"""


def tiny_tokenizer() -> Qwen2Tokenizer:
    """BPE trained until every word of the edit system prompt is one token (so the template prefix is
    64 tokens, as with the real tokenizer)."""
    corpus = [EDIT_SYSTEM_PROMPT] * 8 + [line for line in _INSTRUCTIONS.splitlines() if line] * 4
    return train_qwen_bpe_tokenizer(corpus, vocab_size=600, chat_template=CHAT_TEMPLATE)


def tiny_processor(tokenizer: Qwen2Tokenizer) -> Qwen2VLProcessor:
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=2)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                            chat_template=CHAT_TEMPLATE)


def tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """Qwen2.5-VL: text hidden 32 x 2 layers (2 heads of 16, 1 KV head, mrope [2, 3, 3]), vision 2 blocks."""
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    text = dict(
        vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
        initializer_range=0.2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"), eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        depth=2, hidden_size=32, intermediate_size=64, num_heads=2, in_channels=3, patch_size=PATCH_SIZE,
        spatial_merge_size=MERGE_SIZE, temporal_patch_size=2, out_hidden_size=TEXT_HIDDEN, window_size=56,
        fullatt_block_indexes=[1], initializer_range=0.2,
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                              video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                              vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)
    return Qwen2_5_VLForConditionalGeneration(config)


def tiny_transformer() -> QwenImageTransformer2DModel:
    """2 dual-stream blocks, 2 heads of dim 16, rope axes (frame, row, col) = (4, 6, 6); linear weights x2
    (`scale_linear_weights_`) so that text and reference tokens matter."""
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=4 * LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )
    scale_linear_weights_(transformer, 2.0)
    return transformer


def tiny_vae() -> AutoencoderKLQwenImage:
    """Qwen-Image's causal video VAE at base width 8 (x8 spatially), with the real latent statistics."""
    return AutoencoderKLQwenImage(base_dim=8, z_dim=LATENT_CHANNELS, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                  temperal_downsample=[False, True, True])


def tiny_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """Qwen-Image's scheduler config (``Qwen/Qwen-Image-Edit`` scheduler_config.json)."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
        base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
    )


def tiny_qwen_image_edit_pipeline(seed: int = SEED) -> QwenImageEditPipeline:
    """All components with seeded random weights (seed, seed + 1, ... per component), float32."""
    tokenizer = tiny_tokenizer()
    return QwenImageEditPipeline(
        scheduler=tiny_scheduler(),
        vae=seeded(seed + 1, tiny_vae),
        text_encoder=seeded(seed + 2, lambda: tiny_text_encoder(tokenizer)),
        tokenizer=tokenizer,
        processor=tiny_processor(tokenizer),
        transformer=seeded(seed, tiny_transformer),
    )


def build_tiny_qwen_image_edit(folder: Path) -> None:
    """Write the tiny Qwen-Image-Edit pipeline into ``folder`` (the registry's builder for "tiny/qwen-image-edit")."""
    tiny_qwen_image_edit_pipeline().save_pretrained(str(folder))
