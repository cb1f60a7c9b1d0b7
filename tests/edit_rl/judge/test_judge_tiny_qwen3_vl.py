"""The tiny Qwen3-VL: Qwen's tokens and chat format, loadable by the processor, deterministic."""

import filecmp

import numpy as np
import pytest
from PIL import Image
from transformers import AutoConfig

from edit_rl.models.tiny.qwen3_vl import ALL_ADDED_TOKENS, build_tiny_qwen3_vl


def test_tokenizer_has_every_qwen_added_token_as_one_token(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                  "<|video_pad|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|fim_pad|>"):
        assert token in ALL_ADDED_TOKENS
    for token in ALL_ADDED_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and tokenizer.convert_ids_to_tokens(ids[0]) == token
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ALL_ADDED_TOKENS]
    assert ids == list(range(ids[0], ids[0] + len(ids))) and ids[-1] == len(tokenizer) - 1  # after the BPE
    special = set(tokenizer.all_special_tokens)
    assert "<|image_pad|>" in special and "<think>" not in special  # as in Qwen: decode keeps <think>
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"


def test_digits_and_yes_no_are_single_tokens_also_inside_text(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    singles = {w: tokenizer.encode(w, add_special_tokens=False) for w in ["0", "1", "2", "3", "4", "5", "Yes", "No"]}
    assert all(len(ids) == 1 for ids in singles.values())
    # Qwen's pre-tokenizer splits numbers digit by digit, so "[[45]]" holds the tokens "4" and "5".
    ids = tokenizer.encode('"Score": [[45]]', add_special_tokens=False)
    assert singles["4"][0] in ids and singles["5"][0] in ids


def test_chat_template_renders_qwen_format_with_one_placeholder_per_image(tiny_processor):
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Rate."}]}]
    text = tiny_processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|image_pad|><|vision_end|>"
                    "Rate.<|im_end|>\n<|im_start|>assistant\n")
    # The processor expands each placeholder to (h / 16) * (w / 16) / 2^2 image tokens.
    images = [Image.new("RGB", (64, 64)), Image.new("RGB", (128, 64))]
    batch = tiny_processor(text=[text], images=images, return_tensors="pt")
    pad = tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"] == pad).sum()) == 4 + 8
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 8]]


def test_config_is_the_tiny_qwen3_vl_recipe(tiny_qwen3_vl_path, tiny_processor):
    config = AutoConfig.from_pretrained(tiny_qwen3_vl_path)
    text, vision = config.text_config, config.vision_config
    assert config.architectures == ["Qwen3VLForConditionalGeneration"]
    assert (text.hidden_size, text.num_attention_heads, text.head_dim, text.num_key_value_heads,
            text.num_hidden_layers) == (64, 2, 32, 1, 2)
    assert text.rope_parameters["mrope_section"] == [6, 5, 5]
    assert (vision.depth, vision.hidden_size, vision.deepstack_visual_indexes) == (2, 64, [0])
    assert config.image_token_id == tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert text.vocab_size >= len(tiny_processor.tokenizer)
    assert (tiny_processor.image_processor.patch_size, tiny_processor.image_processor.merge_size) == (16, 2)


def test_build_is_deterministic(tiny_qwen3_vl_path, tmp_path):
    again = build_tiny_qwen3_vl(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json", "chat_template.jinja"):
        assert filecmp.cmp(f"{tiny_qwen3_vl_path}/{name}", again / name, shallow=False), name


def test_other_seed_gives_other_weights(tiny_qwen3_vl_path, tmp_path):
    other = build_tiny_qwen3_vl(tmp_path / "other", seed=1)
    assert not filecmp.cmp(f"{tiny_qwen3_vl_path}/model.safetensors", other / "model.safetensors", shallow=False)
    assert filecmp.cmp(f"{tiny_qwen3_vl_path}/tokenizer.json", other / "tokenizer.json", shallow=False)


@pytest.mark.parametrize("shape", [(64, 64, 3), (64, 64)])
def test_uint8_arrays_become_rgb_images(shape):
    from edit_rl.judge import to_pil

    image = to_pil(np.full(shape, 7, dtype=np.uint8))
    assert image.mode == "RGB" and image.size == (64, 64) and image.getpixel((0, 0)) == (7, 7, 7)
    with pytest.raises(ValueError, match="uint8"):
        to_pil(np.zeros((8, 8, 3), dtype=np.float32))
