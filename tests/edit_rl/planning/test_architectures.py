"""The real architectures built on meta have the published parameter counts."""
import pytest
import torch

from edit_rl.config.schema import LoRAConfig
from edit_rl.editors.lora import add_lora
from edit_rl.planning.architectures import (block_counts, build_meta, build_on, largest_block_parameters,
                                            lora_parameters_of, parameter_count)


@pytest.mark.parametrize("component, published, tolerance", [
    ("flux_kontext_transformer", 11.90e9, 0.005),  # FLUX.1-Kontext-dev / FLUX.1-dev transformer
    ("t5_xxl", 4.76e9, 0.005),  # T5 v1.1 XXL encoder
    ("clip_l_text", 123.1e6, 0.005),  # CLIP ViT-L/14 text tower
    ("flux2_klein_transformer", 9.08e9, 0.01),  # FLUX.2-klein-9B
    ("qwen_image_transformer", 20.43e9, 0.01),  # Qwen-Image
    ("qwen25_vl_7b", 8.29e9, 0.01),  # Qwen2.5-VL-7B-Instruct
    ("qwen3_vl_8b", 8.77e9, 0.01),  # Qwen3-VL-8B-Instruct
    ("qwen3_8b", 8.19e9, 0.01),  # Qwen3-8B
    ("grounding_dino_tiny", 172e6, 0.01),
])
def test_parameter_counts_match_the_published_sizes(component, published, tolerance):
    assert parameter_count(component) == pytest.approx(published, rel=tolerance)


def test_meta_builds_hold_no_storage_and_are_cached():
    model = build_meta("flux_kontext_transformer")
    assert all(p.is_meta for p in model.parameters())
    assert build_meta("flux_kontext_transformer") is model
    assert block_counts("flux_kontext_transformer") == (19, 38)


def test_largest_block_is_a_double_stream_block():
    model = build_meta("flux_kontext_transformer")
    double = sum(p.numel() for p in model.transformer_blocks[0].parameters())
    single = sum(p.numel() for p in model.single_transformer_blocks[0].parameters())
    assert double > single
    assert largest_block_parameters("flux_kontext_transformer") == double


def test_lora_count_equals_what_peft_adds():
    """The suffix rule counts exactly the parameters peft's LoRA injects (one adapter), on a
    real-width FLUX with one block of each kind."""
    model = build_on("flux_kontext_transformer", "meta", torch.float32, num_layers=1, num_single_layers=1)
    expected = lora_parameters_of(model, 8, tuple(LoRAConfig().target_modules))
    add_lora(model, LoRAConfig(rank=8, alpha=16), with_old=False)
    added = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    assert added == expected > 0
