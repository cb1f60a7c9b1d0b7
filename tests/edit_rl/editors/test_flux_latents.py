"""FLUX latent layout: our packing / ids / normalisation against diffusers' own helpers."""

import pytest
import torch
from diffusers import FluxKontextPipeline

from edit_rl.editors.flux_latents import (
    denormalize_latents,
    latent_image_ids,
    normalize_latents,
    pack_latents,
    unpack_latents,
)


def test_pack_matches_diffusers_and_unpack_inverts_it():
    z = torch.randn(3, 16, 8, 12, generator=torch.Generator().manual_seed(0))
    packed = pack_latents(z)
    assert packed.shape == (3, 4 * 6, 64)
    assert torch.equal(packed, FluxKontextPipeline._pack_latents(z, 3, 16, 8, 12))
    assert torch.equal(unpack_latents(packed, 8, 12), z)
    # diffusers' unpack takes the pixel size and the VAE factor
    assert torch.equal(FluxKontextPipeline._unpack_latents(packed, 64, 96, 8), z)


def test_pack_puts_a_2x2_patch_in_one_token_channel_major():
    z = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    token = pack_latents(z)[0, 1]  # patch row 0, patch col 1: pixels (0..1, 2..3)
    assert token.tolist() == [2, 3, 6, 7, 18, 19, 22, 23]


def test_pack_rejects_odd_latents():
    with pytest.raises(ValueError, match="even"):
        pack_latents(torch.zeros(1, 16, 5, 4))


def test_ids_match_diffusers_target_and_reference():
    target = latent_image_ids(3, 5, first=0)
    expected = FluxKontextPipeline._prepare_latent_image_ids(1, 3, 5, "cpu", torch.float32)
    assert torch.equal(target, expected)
    reference = latent_image_ids(3, 5, first=1)
    assert torch.equal(reference[:, 0], torch.ones(15))
    assert torch.equal(reference[:, 1:], expected[:, 1:])
    assert reference[6].tolist() == [1.0, 1.0, 1.0]  # row-major: token 6 of a 5-wide grid is (1, 1)


def test_normalisation_numbers_and_inverse():
    z = torch.tensor([0.1159, 1.1159, -0.8841])
    z_norm = normalize_latents(z, 0.1159, 0.3611)
    assert torch.allclose(z_norm, torch.tensor([0.0, 0.3611, -0.3611]), atol=1e-6)
    assert torch.allclose(denormalize_latents(z_norm, 0.1159, 0.3611), z, atol=1e-6)
