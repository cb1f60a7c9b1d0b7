"""LoRA target names per family: resolving lora.target_modules against the loaded transformer."""

import pytest

from edit_rl.config.schema import EditorConfig, LoRAConfig
from edit_rl.editors.flux2_klein import Flux2KleinEditor
from edit_rl.editors.lora_targets import family_lora_targets, lora_config_for, matching_modules
from edit_rl.editors.qwen_image_edit import QwenImageEditEditor

SCHEMA_DEFAULT = LoRAConfig().target_modules  # FLUX.1-Kontext's attention projections


@pytest.fixture(scope="module")
def flux2() -> Flux2KleinEditor:
    return Flux2KleinEditor(EditorConfig(family="flux2_klein", name_or_path="tiny/flux2-klein", dtype="float32",
                                         resolution=32, max_sequence_length=32, gradient_checkpointing=False))


@pytest.fixture(scope="module")
def qwen() -> QwenImageEditEditor:
    return QwenImageEditEditor(EditorConfig(family="qwen_image_edit", name_or_path="tiny/qwen-image-edit",
                                            dtype="float32", resolution=32, gradient_checkpointing=False))


def test_matching_follows_peft_suffix_rules_on_linear_layers_only(flux2):
    t = flux2.transformer
    assert matching_modules(t, "to_qkv_mlp_proj") == [f"single_transformer_blocks.{i}.attn.to_qkv_mlp_proj"
                                                      for i in range(2)]
    # "to_out" names the double block's ModuleList (not a Linear) and each single block's Linear
    assert matching_modules(t, "to_out") == ["single_transformer_blocks.0.attn.to_out",
                                             "single_transformer_blocks.1.attn.to_out"]
    assert matching_modules(t, "to_out.0") == ["transformer_blocks.0.attn.to_out.0"]
    assert matching_modules(t, "q") == []  # whole name parts only


def test_schema_default_becomes_the_family_default(flux2, qwen):
    flux2_cfg = lora_config_for(flux2, LoRAConfig(rank=4, alpha=8))
    assert flux2_cfg.target_modules == flux2.default_lora_targets() != SCHEMA_DEFAULT
    assert set(SCHEMA_DEFAULT) < set(flux2_cfg.target_modules)  # the single-stream blocks are added
    assert (flux2_cfg.rank, flux2_cfg.alpha) == (4, 8)
    assert lora_config_for(qwen, LoRAConfig()).target_modules == qwen.default_lora_targets() == SCHEMA_DEFAULT


def test_targets_of_another_family_fall_back_and_explicit_ones_are_kept(flux2, qwen):
    flux2_only = LoRAConfig(target_modules=["to_qkv_mlp_proj", "single_transformer_blocks.0.attn.to_out"])
    assert lora_config_for(qwen, flux2_only).target_modules == qwen.default_lora_targets()
    assert lora_config_for(flux2, flux2_only).target_modules == flux2_only.target_modules
    assert lora_config_for(qwen, LoRAConfig(target_modules=["to_q", "to_v"])).target_modules == ["to_q", "to_v"]
    with pytest.raises(ValueError, match="to_qv"):
        lora_config_for(qwen, LoRAConfig(target_modules=["to_q", "to_qv"]))


def test_editor_without_family_defaults_uses_the_schema_default():
    class Plain:
        pass
    assert family_lora_targets(Plain()) == SCHEMA_DEFAULT
