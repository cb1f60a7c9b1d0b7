"""Editors loaded transformer-only (what a learner rank loads): only the transformer holds weights,
the text encoders and the VAE are meta-device shells of their configs, the velocity is the full
editor's, and encoding or decoding is refused with a clear error."""
import pytest
import torch

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.load import load_editor

FAMILIES = [("flux_kontext", "tiny/flux-kontext", ("vae", "text_encoder", "text_encoder_2")),
            ("flux2_klein", "tiny/flux2-klein", ("vae", "text_encoder")),
            ("qwen_image_edit", "tiny/qwen-image-edit", ("vae", "text_encoder"))]


def _settings(config) -> dict:
    """A diffusers or transformers config as a dict, without where it was read from."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {k: v for k, v in values.items() if k not in ("_name_or_path", "dtype", "torch_dtype")}


@pytest.mark.parametrize("family, name, others", FAMILIES)
def test_only_the_transformer_is_loaded_and_its_velocity_is_the_full_editors(family, name, others):
    cfg = EditorConfig(family=family, name_or_path=name, dtype="float32", resolution=32, max_sequence_length=16,
                       gradient_checkpointing=False)
    full = load_editor(cfg)
    slim = load_editor(cfg, transformer_only=True)
    for attr in others:
        params = list(getattr(slim, attr).parameters())
        assert params and all(p.is_meta for p in params), attr
        assert _settings(getattr(slim, attr).config) == _settings(getattr(full, attr).config), attr
    assert not any(p.is_meta for p in slim.transformer.parameters())
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g)
    cond = full.condition(["make it red", "add a hat"], images)
    x = full.initial_noise(2, torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.7, 0.3])
    assert torch.equal(slim.velocity(x, sigma, cond), full.velocity(x, sigma, cond))
    with pytest.raises(RuntimeError, match="loaded transformer-only .*: condition needs the text encoders"):
        slim.condition(["make it red"], images[:1])
    with pytest.raises(RuntimeError, match="decode needs the text encoders and the VAE"):
        slim.decode(x)
