"""Flow-GRPO SDE / CPS step with log-probability."""

import math
from collections.abc import Callable

import pytest
import torch
from torch.distributions import Normal

from edit_rl.flow import euler_step, sde_step_with_logprob, x0_from_velocity

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the `velocity` fixture


def _xv(velocity: VelocityField, sigma: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    return x, velocity(x, torch.full((4,), sigma))


def test_sde_mean_and_std_hand_values() -> None:
    # s = 0.7 sqrt(0.5 / 0.5) = 0.7; dt = -0.25;
    # mu = 1 (1 - 0.49 * 0.25 / 1) + 2 (1 + 0.49 * 0.5 / 1)(-0.25) = 0.8775 - 0.6225 = 0.255.
    x, v = torch.tensor([[1.0]]), torch.tensor([[2.0]])
    out = sde_step_with_logprob(x, v, 0.5, 0.25, 0.9, 0.7, generator=torch.Generator().manual_seed(0))
    assert out.mean.item() == pytest.approx(0.255, abs=1e-6)
    assert out.std.tolist() == pytest.approx([0.7])
    # the noise has std s sqrt(-dt) = 0.35: recover it from the sample
    eps = torch.randn(1, 1, generator=torch.Generator().manual_seed(0))
    assert out.prev_sample.item() == pytest.approx(0.255 + 0.35 * eps.item(), abs=1e-6)


def test_sde_at_sigma_one_uses_sigma_max() -> None:
    # sigma = 1, sigma_max = 0.8: s = 0.7 sqrt(1 / 0.2), s^2 = 2.45, mu = 0.755 x - 0.2 v,
    # noise std s sqrt(0.2) = 0.7.
    x, v = torch.tensor([[1.0]]), torch.tensor([[2.0]])
    out = sde_step_with_logprob(x, v, 1.0, 0.8, 0.8, 0.7, prev_sample=torch.tensor([[0.5]]))
    assert out.mean.item() == pytest.approx(0.355, abs=1e-6)
    assert out.std.item() == pytest.approx(0.7 * math.sqrt(5.0), rel=1e-6)
    expected = Normal(torch.tensor(0.355), torch.tensor(0.7)).log_prob(torch.tensor(0.5))
    assert out.log_prob.item() == pytest.approx(expected.item(), abs=1e-5)
    # per-sample sigma (B,) with a 1 in it agrees with the scalar calls
    xb, vb = torch.tensor([[1.0], [1.0]]), torch.tensor([[2.0], [2.0]])
    outb = sde_step_with_logprob(
        xb, vb, torch.tensor([1.0, 0.5]), torch.tensor([0.8, 0.25]), 0.8, 0.7,
        prev_sample=torch.tensor([[0.5], [0.5]]),
    )
    assert outb.mean.squeeze(1).tolist() == pytest.approx([0.355, 0.255], abs=1e-6)
    assert outb.std.tolist() == pytest.approx([0.7 * math.sqrt(5.0), 0.7], rel=1e-6)


def test_sde_log_prob_is_mean_gaussian_density(velocity: VelocityField) -> None:
    x, v = _xv(velocity)
    sigma, sigma_next, a = 0.6, 0.45, 0.7
    out = sde_step_with_logprob(x, v, sigma, sigma_next, 0.95, a, generator=torch.Generator().manual_seed(3))
    s = a * math.sqrt(sigma / (1 - sigma))
    dt = sigma_next - sigma
    mu = x * (1 + s**2 / (2 * sigma) * dt) + v * (1 + s**2 * (1 - sigma) / (2 * sigma)) * dt
    assert torch.allclose(out.mean, mu, atol=1e-6)
    ref = Normal(mu.double(), s * math.sqrt(-dt)).log_prob(out.prev_sample.double()).mean(dim=(1, 2, 3))
    assert out.log_prob.dtype == torch.float32 and out.log_prob.shape == (4,)
    assert torch.allclose(out.log_prob.double(), ref, atol=1e-5)
    # recomputing with prev_sample (the learner) gives the same log-prob, no noise drawn
    again = sde_step_with_logprob(x, v, sigma, sigma_next, 0.95, a, prev_sample=out.prev_sample)
    assert torch.equal(again.log_prob, out.log_prob)
    assert torch.equal(again.prev_sample, out.prev_sample)
    # a different velocity gives a different (lower, as the sample came from the first) log-prob
    other = sde_step_with_logprob(x, v + 0.5, sigma, sigma_next, 0.95, a, prev_sample=out.prev_sample)
    assert bool((other.log_prob < out.log_prob).all())


def test_sde_per_sample_sigmas_match_scalar_calls(velocity: VelocityField) -> None:
    x, v = _xv(velocity)
    sig = torch.tensor([1.0, 0.8, 0.5, 0.2])
    nxt = torch.tensor([0.9, 0.6, 0.3, 0.0])
    prev = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    batched = sde_step_with_logprob(x, v, sig, nxt, 0.9, 0.9, prev_sample=prev)
    for i in range(4):
        one = sde_step_with_logprob(
            x[i : i + 1], v[i : i + 1], float(sig[i]), float(nxt[i]), 0.9, 0.9, prev_sample=prev[i : i + 1]
        )
        assert torch.allclose(batched.mean[i], one.mean[0], atol=1e-6)
        assert torch.allclose(batched.log_prob[i], one.log_prob[0], atol=1e-5)
        assert torch.allclose(batched.std[i], one.std[0])


def test_sde_noise_level_zero_is_euler(velocity: VelocityField) -> None:
    x, v = _xv(velocity)
    out = sde_step_with_logprob(x, v, 0.6, 0.4, 0.9, 0.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.prev_sample, euler_step(x, v, 0.6, 0.4), atol=1e-6)


def test_sde_gradient_through_mean_only(velocity: VelocityField) -> None:
    x, v = _xv(velocity)
    v = v.clone().requires_grad_(True)
    prev = torch.randn(x.shape, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    out = sde_step_with_logprob(x, v, 0.6, 0.4, 0.9, 0.7, prev_sample=prev)
    out.log_prob.sum().backward()
    assert v.grad is not None and prev.grad is None


def test_sde_marginals_preserved_for_gaussian_data() -> None:
    """For x0 ~ N(0, c^2) the exact velocity is v = (t - (1 - t) c^2) / var_t x, var_t =
    (1 - t)^2 c^2 + t^2. The SDE started from N(0, 1) at t = 1 must end near N(0, c^2); a wrong
    drift correction (e.g. a sign) does not."""
    c = 0.5

    def v_exact(x: torch.Tensor, t: float) -> torch.Tensor:
        var = (1 - t) ** 2 * c**2 + t**2
        return (t - (1 - t) * c**2) / var * x

    grid = torch.linspace(1.0, 0.0, 101, dtype=torch.float64)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40000, 1, generator=g)
    for j in range(100):
        s, s_next = float(grid[j]), float(grid[j + 1])
        x = sde_step_with_logprob(x, v_exact(x, s), s, s_next, float(grid[1]), 0.7, generator=g).prev_sample
    assert x.std().item() == pytest.approx(c, rel=0.03)


def test_cps_hand_values_and_log_prob(velocity: VelocityField) -> None:
    # sigma = 0.5, sigma' = 0.25, a = 0.5: std = 0.25 sin(pi / 4); x0_hat = 0, x1_hat = 2,
    # mu = 2 sqrt(0.0625 - std^2) = 0.353553.
    x, v = torch.tensor([[1.0]]), torch.tensor([[2.0]])
    out = sde_step_with_logprob(x, v, 0.5, 0.25, 0.9, 0.5, prev_sample=torch.tensor([[0.5]]), kind="cps")
    assert out.mean.item() == pytest.approx(2 * math.sqrt(0.0625 - 0.03125), abs=1e-6)
    assert out.std.item() == pytest.approx(0.25 * math.sin(math.pi / 4), rel=1e-6)
    assert out.log_prob.item() == pytest.approx(-((0.5 - 0.3535534) ** 2), abs=1e-6)

    xb, vb = _xv(velocity)
    sigma, sigma_next, a = 0.6, 0.45, 0.8
    g = torch.Generator().manual_seed(7)
    out = sde_step_with_logprob(xb, vb, sigma, sigma_next, 0.9, a, generator=g, kind="cps")
    std = sigma_next * math.sin(a * math.pi / 2)
    x0 = x0_from_velocity(xb, sigma, vb)
    x1 = xb + (1 - sigma) * vb
    mu = x0 * (1 - sigma_next) + x1 * math.sqrt(sigma_next**2 - std**2)
    assert torch.allclose(out.mean, mu, atol=1e-6)
    eps = torch.randn(xb.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(out.prev_sample, mu + std * eps, atol=1e-6)
    # constants removed (flow_grpo): log p = -mean (x' - mu)^2
    assert torch.allclose(out.log_prob, -((out.prev_sample - mu) ** 2).mean(dim=(1, 2, 3)), atol=1e-6)
    again = sde_step_with_logprob(xb, vb, sigma, sigma_next, 0.9, a, prev_sample=out.prev_sample, kind="cps")
    assert torch.equal(again.log_prob, out.log_prob)


def test_cps_noise_level_zero_is_euler(velocity: VelocityField) -> None:
    # a = 0: std = 0, mu = (1 - s') x0_hat + s' x1_hat, which is the DDIM / Euler step
    x, v = _xv(velocity)
    g = torch.Generator().manual_seed(0)
    out = sde_step_with_logprob(x, v, 0.6, 0.4, 0.9, 0.0, generator=g, kind="cps")
    assert torch.allclose(out.prev_sample, euler_step(x, v, 0.6, 0.4), atol=1e-6)


def test_sde_argument_errors() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError):
        sde_step_with_logprob(x, x, 0.5, 0.4, 0.9, 0.7, kind="ode")
    with pytest.raises(ValueError):
        sde_step_with_logprob(x, x, 0.5, 0.4, 0.9, -0.1)
    with pytest.raises(ValueError):
        sde_step_with_logprob(x, x, 0.4, 0.5, 0.9, 0.7)
    with pytest.raises(ValueError):
        sde_step_with_logprob(x, x, 0.5, 0.4, 0.9, 0.7, prev_sample=x, generator=torch.Generator())


@pytest.mark.parametrize("kind", ["sde", "cps"])
def test_per_sample_sigmas_give_each_row_its_own_float_step(kind: str) -> None:
    g = torch.Generator().manual_seed(5)
    x, v, prev = (torch.randn(3, 2, 4, generator=g) for _ in range(3))
    sigma, sigma_next = torch.tensor([0.9, 0.6, 0.3]), torch.tensor([0.7, 0.4, 0.1])
    out = sde_step_with_logprob(x, v, sigma, sigma_next, 0.95, 0.7, prev_sample=prev, kind=kind)
    for i in range(3):
        row = sde_step_with_logprob(x[i:i + 1], v[i:i + 1], float(sigma[i]), float(sigma_next[i]), 0.95, 0.7,
                                    prev_sample=prev[i:i + 1], kind=kind)
        assert torch.allclose(out.mean[i], row.mean[0], atol=1e-6)
        assert torch.allclose(out.log_prob[i], row.log_prob[0], atol=1e-6)
        assert torch.allclose(out.std[i], row.std[0], atol=1e-7)
