import pytest
import torch

from edit_rl.flow import interpolate, velocity_target, x0_from_velocity


def test_hand_values() -> None:
    x0 = torch.tensor([[2.0]])
    eps = torch.tensor([[-1.0]])
    x_t = interpolate(x0, eps, 0.25)
    assert torch.allclose(x_t, torch.tensor([[1.25]]))  # 0.75 * 2 + 0.25 * (-1)
    v = velocity_target(x0, eps)
    assert torch.allclose(v, torch.tensor([[-3.0]]))
    assert torch.allclose(x0_from_velocity(x_t, 0.25, v), x0)
    assert torch.equal(interpolate(x0, eps, 0.0), x0)
    assert torch.equal(interpolate(x0, eps, 1.0), eps)


def test_per_sample_t_broadcast_and_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 5, generator=g)
    eps = torch.randn(3, 4, 5, generator=g)
    t = torch.tensor([0.0, 0.3, 1.0])
    x_t = interpolate(x0, eps, t)
    for i in range(3):
        assert torch.allclose(x_t[i], (1 - t[i]) * x0[i] + t[i] * eps[i])
    v = velocity_target(x0, eps)
    assert torch.allclose(x0_from_velocity(x_t, t, v), x0, atol=1e-6)
    # x_t moves along v: d x_t / dt = v
    assert torch.allclose(interpolate(x0, eps, t + 0.1) - x_t, 0.1 * v, atol=1e-6)


def test_dtype_kept_and_bad_t_shape() -> None:
    x0 = torch.zeros(2, 3, dtype=torch.bfloat16)
    assert interpolate(x0, x0, torch.tensor([0.5, 0.5])).dtype == torch.bfloat16
    with pytest.raises(ValueError):
        interpolate(x0, x0, torch.tensor([0.5, 0.5, 0.5]))
