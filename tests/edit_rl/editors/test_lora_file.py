"""A saved LoRA read back (edit_rl.editors.lora.read_lora_weights): rank / alpha / targets from the
file's metadata, weights that reproduce the trained adapter in a fresh editor (the evaluation job
loads checkpoints this way)."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from edit_rl.config.schema import LoRAConfig
from edit_rl.editors import lora
from edit_rl.editors.flux_kontext import FluxKontextEditor
from edit_rl.editors.lora_targets import lora_config_for

PROMPT = "turn the cat into a tiger"


def test_saved_adapter_reads_back_with_its_config_and_gives_the_same_velocity(editor, tiny_cfg, input_images,
                                                                               tmp_path):
    trained_cfg = lora_config_for(editor, LoRAConfig(rank=4, alpha=8))
    lora.add_lora(editor.transformer, trained_cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _, p in lora.adapter_parameters(editor.transformer, "default"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    lora.save_lora_weights(editor, tmp_path)

    weights = lora.read_lora_weights(tmp_path)
    assert (weights.rank, weights.alpha) == (4, 8)
    assert weights.target_modules == sorted(trained_cfg.target_modules)
    assert weights.state.keys() == lora.adapter_state_dict(editor.transformer).keys()
    assert lora.read_lora_weights(tmp_path / lora.LORA_WEIGHTS_FILE).state.keys() == weights.state.keys()

    # a fresh editor (e.g. an evaluation worker built with a preset's other rank) takes the file's config
    fresh = FluxKontextEditor(tiny_cfg())
    config = weights.config(LoRAConfig(rank=16, alpha=16))
    assert (config.rank, config.alpha) == (4, 8)
    lora.add_lora(fresh.transformer, lora_config_for(fresh, config))
    lora.load_adapter_state_dict_(fresh.transformer, weights.state, adapter="old")
    cond = editor.condition([PROMPT], input_images[:1])
    x = editor.initial_noise(1, torch.Generator().manual_seed(5))
    sigma = torch.tensor([0.7])
    with torch.no_grad():
        trained = editor.velocity(x, sigma, cond)
        with lora.active_adapter(fresh.transformer, "old"):
            loaded = fresh.velocity(x, sigma, fresh.condition([PROMPT], input_images[:1]))
        base = fresh.velocity(x, sigma, cond)  # "default" of the fresh editor: still B = 0
    assert torch.allclose(trained, loaded, atol=1e-6)
    assert (trained - base).abs().max() > 1e-3


def test_missing_or_foreign_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="no LoRA weights"):
        lora.read_lora_weights(tmp_path)
    path = tmp_path / lora.LORA_WEIGHTS_FILE
    save_file({"transformer.x.lora_A.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ValueError, match="lora_adapter_metadata"):
        lora.read_lora_weights(tmp_path)
    meta = {"lora_adapter_metadata": json.dumps({"transformer.r": 2, "transformer.lora_alpha": 2,
                                                 "transformer.target_modules": ["x"]})}
    save_file({"text_encoder.x.lora_A.weight": torch.zeros(2, 2)}, str(path), metadata=meta)
    with pytest.raises(ValueError, match="only transformer LoRA weights"):
        lora.read_lora_weights(tmp_path)
    save_file({"transformer.x.lora_A.weight": torch.zeros(2, 2)}, str(path), metadata=meta)
    read = lora.read_lora_weights(tmp_path)
    assert list(read.state) == ["x.lora_A.weight"] and load_file(str(path))
