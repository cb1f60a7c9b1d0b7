"""A tiny random-weight Qwen3-VL saved as a local folder that loads like `Qwen/Qwen3-VL-8B-Instruct`
(``AutoModelForImageTextToText`` / ``Qwen3VLForConditionalGeneration`` + ``AutoProcessor`` in
transformers, and ``vllm.LLM(model=folder)``).

What matches the real checkpoint: the architecture class, the Qwen2 tokenizer class with its
pre-tokenizer regex (digits split one by one), every Qwen added token, a Qwen-style chat
template with ``<|vision_start|><|image_pad|><|vision_end|>`` per image, the Qwen2-VL image
processor (patch 16, merge 2, temporal patch 2) and interleaved M-RoPE.
What is shrunk: text hidden 64, 2 layers, 2 heads of dim 32 (a head size vLLM's CPU attention
supports), 1 KV head; vision depth 2, hidden 64, deepstack layer [0]; mrope_section [6, 5, 5]
(sums to head_dim / 2); a byte-level BPE vocabulary of ~450 tokens trained here on a fixed
corpus (edit_rl.models.tiny.qwen_bpe_tokenizer) in which "0".."5", "Yes" and "No" are single
tokens, as in Qwen's; images limited to 32^2 .. 128^2 pixels (1 to 16 image tokens).

Deterministic: the same seed gives byte-identical weights and tokenizer.
"""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from edit_rl.models.tiny.qwen_bpe_tokenizer import NON_SPECIAL_ADDED_TOKENS, SPECIAL_TOKENS, train_qwen_bpe_tokenizer

# The rest of Qwen's added tokens (tools, fill-in-the-middle), not "special" in Qwen's tokenizer.
QWEN_TOOL_AND_FIM_TOKENS: tuple[str, ...] = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
)
ALL_ADDED_TOKENS: tuple[str, ...] = SPECIAL_TOKENS + NON_SPECIAL_ADDED_TOKENS + QWEN_TOOL_AND_FIM_TOKENS
SINGLE_TOKEN_WORDS: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "Yes", "No")
BPE_VOCAB_SIZE = 420  # 256 byte symbols + merges; the added tokens come on top
PATCH_SIZE = 16
MERGE_SIZE = 2
MIN_PIXELS = (PATCH_SIZE * MERGE_SIZE) ** 2  # one image token
MAX_PIXELS = 16 * MIN_PIXELS  # sixteen image tokens (128x128)

# A Qwen-style chat template (the real Qwen3-VL one, less tools, videos and reasoning content).
CHAT_TEMPLATE = r"""{%- for message in messages %}
{{- '<|im_start|>' + message['role'] + '\n' }}
{%- if message['content'] is string %}
{{- message['content'] }}
{%- else %}
{%- for item in message['content'] %}
{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item %}
{{- '<|vision_start|><|image_pad|><|vision_end|>' }}
{%- elif item['type'] == 'video' or 'video' in item %}
{{- '<|vision_start|><|video_pad|><|vision_end|>' }}
{%- elif 'text' in item %}
{{- item['text'] }}
{%- endif %}
{%- endfor %}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

_CORPUS = """You are a helpful assistant. Here are two images: the original and the edited version.
Please evaluate the edited image based on the following editing instructions and requirements.
Instruction: change the color of the car to red. Requirements: keep the background unchanged.
You need to rate the editing result from 0 to 5 based on the accuracy and quality of the edit.
0: The wrong object was edited, or the edit completely fails to meet the requirements.
5: The correct object was edited, the requirements were met, and the visual result is high quality.
Response Format: "Score": [[rating]] (0-5). "Reasoning": "...", "Judgement": [[Yes/No]]
Answer "Yes" if the correct object was edited. Answer "No" if the wrong object was edited.
Here are four images: the original image followed by the results of three successive edits.
Turn 1: add a hat to the person. Turn 2: remove the tree. Turn 3: make the sky blue.
"Turn 1": [[4]], "Turn 2": [[3]], "Turn 3": [[5]]. Before that, analyze the images and provide
some reasoning process for better evaluation (keep your reasoning concise). The dog sits on a
bench next to a white cat; a green leaf, a yellow ball and a black bag lie on the grass.
system user assistant system user assistant
"""


def _training_text() -> list[str]:
    """The fixed BPE training corpus: the paragraph above, repeated, and the single-token words."""
    lines = [line for line in _CORPUS.splitlines() if line]
    return lines * 4 + [" ".join(SINGLE_TOKEN_WORDS)] * 8


def build_tiny_qwen_tokenizer() -> Qwen2Tokenizer:
    """The shared tiny Qwen BPE (edit_rl.models.tiny.qwen_bpe_tokenizer) trained on the fixed corpus,
    plus the rest of Qwen's added tokens. Raises if a word of SINGLE_TOKEN_WORDS is not one token."""
    tokenizer = train_qwen_bpe_tokenizer(_training_text(), vocab_size=BPE_VOCAB_SIZE, chat_template=CHAT_TEMPLATE)
    tokenizer.add_tokens([t for t in QWEN_TOOL_AND_FIM_TOKENS if t not in tokenizer.get_vocab()])
    for word in SINGLE_TOKEN_WORDS:
        ids = tokenizer.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"tiny Qwen tokenizer: {word!r} is {len(ids)} tokens, expected 1")
    return tokenizer


def tiny_qwen3_vl_config(tokenizer: Qwen2Tokenizer) -> Qwen3VLConfig:
    """Qwen3-VL architecture shrunk to text 64 x 2 layers and vision 64 x 2 blocks."""
    vocab_size = -(-len(tokenizer) // 64) * 64  # padded like the real embedding table
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in
           ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|endoftext|>")}
    text = dict(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=32768,
        rms_norm_eps=1e-6, tie_word_embeddings=False, pad_token_id=ids["<|endoftext|>"],
        rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                         "mrope_section": [6, 5, 5], "mrope_interleaved": True},
        initializer_range=0.2,  # larger than 0.02 so that a random model's distributions are not flat
    )
    vision = dict(
        depth=2, hidden_size=64, intermediate_size=128, num_heads=2, in_channels=3,
        patch_size=PATCH_SIZE, spatial_merge_size=MERGE_SIZE, temporal_patch_size=2, out_hidden_size=64,
        num_position_embeddings=256, deepstack_visual_indexes=[0], initializer_range=0.2,
    )
    return Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False)


def build_tiny_qwen3_vl(folder: Path, seed: int = 0) -> Path:
    """Write the tiny Qwen3-VL (float32 weights, tokenizer, chat template, image and video
    processors, generation config) to ``folder`` and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_qwen_tokenizer()
    config = tiny_qwen3_vl_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"),
                      tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(folder)
    size = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    image_processor = Qwen2VLImageProcessor(size=size, patch_size=PATCH_SIZE, merge_size=MERGE_SIZE,
                                            temporal_patch_size=2)
    video_processor = Qwen3VLVideoProcessor(size={"shortest_edge": MIN_PIXELS, "longest_edge": 4 * MAX_PIXELS},
                                            patch_size=PATCH_SIZE, merge_size=MERGE_SIZE, temporal_patch_size=2)
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=CHAT_TEMPLATE)
    processor.save_pretrained(folder)
    return folder
