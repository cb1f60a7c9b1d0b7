"""The traced FLUX.1-Kontext costs agree with a hand count, and checkpointing trades memory for FLOPs."""
import pytest

from edit_rl.planning.component_costs import vae_costs
from edit_rl.planning.transformer_costs import image_tokens, transformer_costs

D, FF, TXT_IN, TEXT, IMAGE = 3072, 12288, 4096, 512, 2 * 1024  # target + reference tokens at 512 px


def flux_forward_flops_by_hand() -> float:
    """2 x multiply-adds of every per-token linear + 4 L^2 d attention per block (FLUX.1 layout)."""
    double_stream = 4 * D * D + 2 * D * FF  # q, k, v, out and the MLP, per stream
    single = D * (3 * D + FF) + (D + FF) * D  # fused qkv + MLP in, and out
    linear = 19 * double_stream * (IMAGE + TEXT) + 38 * single * (IMAGE + TEXT)
    embed = IMAGE * 64 * D + TEXT * TXT_IN * D + IMAGE * D * 64
    attention = 57 * 4 * (IMAGE + TEXT) ** 2 * D
    return 2 * (linear + embed) + attention


def test_flux_forward_flops_match_the_hand_count():
    costs = transformer_costs("flux_kontext", 512, TEXT, True)
    assert image_tokens(512) == 1024
    assert costs.forward_flops == pytest.approx(flux_forward_flops_by_hand(), rel=0.01)


def test_checkpointing_recomputes_one_forward_and_keeps_less():
    on = transformer_costs("flux_kontext", 512, TEXT, True)
    off = transformer_costs("flux_kontext", 512, TEXT, False)
    assert on.training_flops - off.training_flops == pytest.approx(on.forward_flops, rel=0.02)
    assert 2.0 < off.training_flops / off.forward_flops < 2.5  # frozen weights: backward ~ 1x forward + attention
    assert on.training_bytes < off.training_bytes / 5
    # without checkpointing each of the 57 blocks keeps far more than its (B, L, D) input
    assert off.training_bytes > 57 * (IMAGE + TEXT) * D * 2 * 4


def test_vae_decode_costs_more_than_encode():
    costs = vae_costs("flux_kontext", 512)
    assert costs.decode_flops > costs.encode_flops > 0
    assert costs.peak_bytes > 3 * 512 * 512 * 2  # more than the image itself
