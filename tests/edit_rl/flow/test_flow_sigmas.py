import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from edit_rl.flow import calculate_shift, exponential_time_shift, kontext_sigmas, linear_sigmas


def _diffusers_kontext(num_steps: int, image_seq_len: int) -> torch.Tensor:
    # FLUX.1-Kontext-dev scheduler config + what FluxKontextPipeline passes to set_timesteps.
    sched = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096, time_shift_type="exponential",
    )
    sigmas = linear_sigmas(num_steps).numpy()
    mu = calculate_shift(image_seq_len)
    sched.set_timesteps(sigmas=sigmas, mu=mu)
    return sched.sigmas.double()


def test_linear_sigmas() -> None:
    assert torch.allclose(linear_sigmas(4), torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64))
    assert torch.equal(linear_sigmas(1), torch.tensor([1.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        linear_sigmas(0)


def test_calculate_shift() -> None:
    assert calculate_shift(256) == pytest.approx(0.5)
    assert calculate_shift(4096) == pytest.approx(1.15)
    assert calculate_shift(1024) == pytest.approx(0.63)  # 512x512 target
    assert calculate_shift(2176) == pytest.approx(0.825)  # midpoint is linear


def test_exponential_time_shift_hand_values() -> None:
    s = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)
    mu = 0.63
    e = math.exp(mu)
    expected = torch.tensor([1.0, e / (e + 1.0), e / (e + 3.0)], dtype=torch.float64)
    assert torch.allclose(exponential_time_shift(s, mu), expected)
    assert torch.allclose(exponential_time_shift(s, 0.0), s)  # mu = 0 is the identity


def test_kontext_512_six_steps() -> None:
    got = kontext_sigmas(6, 1024)
    expected = torch.tensor([1.0, 0.9037, 0.7897, 0.6525, 0.4842, 0.2730, 0.0], dtype=torch.float64)
    assert got.shape == (7,)
    assert torch.allclose(got, expected, atol=5e-5)
    assert got[0] == 1.0 and got[-1] == 0.0


@pytest.mark.parametrize("num_steps,seq_len", [(6, 1024), (28, 4096), (15, 1024), (10, 256)])
def test_kontext_matches_diffusers(num_steps: int, seq_len: int) -> None:
    ours = kontext_sigmas(num_steps, seq_len)
    theirs = _diffusers_kontext(num_steps, seq_len)
    assert ours.shape == theirs.shape
    assert torch.allclose(ours, theirs, atol=1e-6)  # diffusers works in float32
