"""The batched sampling loop."""

from collections.abc import Callable

import pytest
import torch

from edit_rl.flow import dpm2_step, euler_step, kontext_sigmas, sample, sde_step_with_logprob

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the `velocity` fixture

GRID = kontext_sigmas(6, 1024)


def _x() -> torch.Tensor:
    return torch.randn(3, 4, 6, 6, generator=torch.Generator().manual_seed(0))


def _euler_traj(velocity: VelocityField, x: torch.Tensor) -> list[torch.Tensor]:
    traj = [x]
    for j in range(GRID.numel() - 1):
        v = velocity(x, torch.full((x.shape[0],), float(GRID[j])))
        x = euler_step(x, v, float(GRID[j]), float(GRID[j + 1]))
        traj.append(x)
    return traj


def test_euler_and_dpm2_methods_match_manual_loops(velocity: VelocityField) -> None:
    x = _x()
    res = sample(velocity, x, GRID, "euler")
    assert torch.allclose(res.x0, _euler_traj(velocity, x)[-1], atol=1e-6)
    assert res.latents is None and res.log_probs is None
    prev, y = None, x
    for j in range(6):
        y, prev = dpm2_step(y, velocity(y, torch.full((3,), float(GRID[j]))), GRID, j, prev)
    assert torch.allclose(sample(velocity, x, GRID.tolist(), "dpm2").x0, y, atol=1e-6)


def test_velocity_fn_gets_batched_sigma(velocity: VelocityField) -> None:
    seen: list[torch.Tensor] = []

    def vf(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        seen.append(sigma.clone())
        return velocity(x, sigma)

    sample(vf, _x(), GRID, "sde", generator=torch.Generator().manual_seed(0))
    assert len(seen) == 6
    for j, s in enumerate(seen):
        assert s.shape == (3,) and torch.allclose(s, torch.full((3,), float(GRID[j])))


def test_sde_deterministic_for_a_generator(velocity: VelocityField) -> None:
    def run(seed: int):
        return sample(velocity, _x(), GRID, "sde", generator=torch.Generator().manual_seed(seed), record=True)

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a.x0, b.x0) and torch.equal(a.log_probs, b.log_probs)
    assert not torch.allclose(a.x0, c.x0)


def test_record_shapes_and_consistency(velocity: VelocityField) -> None:
    x = _x()
    g = torch.Generator().manual_seed(3)
    res = sample(velocity, x, GRID, "sde", generator=g, noise_level=0.9, record=True)
    assert res.latents.shape == (3, 6, 4, 6, 6) and res.next_latents.shape == (3, 6, 4, 6, 6)
    assert res.sde_steps.tolist() == list(range(6))
    assert res.log_probs.shape == (3, 6) and res.log_probs.dtype == torch.float32
    assert res.means.shape == (3, 6, 4, 6, 6) and res.stds.shape == (3, 6)
    assert torch.equal(res.latents[:, 0], x)
    assert torch.equal(res.latents[:, 1:], res.next_latents[:, :-1])
    assert torch.equal(res.next_latents[:, -1], res.x0)
    assert torch.equal(res.sigmas, GRID)
    # the learner recomputes the same log-probs from the recorded transitions
    for k, j in enumerate(res.sde_steps.tolist()):
        xj = res.latents[:, j]
        out = sde_step_with_logprob(
            xj, velocity(xj, torch.full((3,), float(GRID[j]))), GRID[j].expand(3), GRID[j + 1].expand(3),
            float(GRID[1]), 0.9, prev_sample=res.next_latents[:, j],
        )
        assert torch.allclose(out.log_prob, res.log_probs[:, k], atol=1e-5)
        assert torch.allclose(out.mean, res.means[:, k], atol=1e-6)
        assert torch.allclose(out.std, res.stds[:, k])


def test_sde_window_is_ode_outside(velocity: VelocityField) -> None:
    x = _x()
    euler = _euler_traj(velocity, x)
    g = torch.Generator().manual_seed(4)
    res = sample(velocity, x, GRID, "sde", generator=g, sde_window=(2, 4), record=True)
    assert res.sde_steps.tolist() == [2, 3]
    assert res.log_probs.shape == (3, 2) and res.means.shape == (3, 2, 4, 6, 6)
    for j in range(2):  # before the window: exactly the Euler trajectory
        assert torch.allclose(res.next_latents[:, j], euler[j + 1], atol=1e-6)
    assert not torch.allclose(res.next_latents[:, 2], euler[3], atol=1e-3)
    for j in (4, 5):  # after the window: Euler steps from wherever the SDE left off
        xj = res.latents[:, j]
        vj = velocity(xj, torch.full((3,), float(GRID[j])))
        step = euler_step(xj, vj, float(GRID[j]), float(GRID[j + 1]))
        assert torch.allclose(res.next_latents[:, j], step, atol=1e-6)


def test_noise_level_zero_is_euler(velocity: VelocityField) -> None:
    x = _x()
    for kind in ("sde", "cps"):
        g = torch.Generator().manual_seed(5)
        res = sample(velocity, x, GRID, "sde", generator=g, noise_level=0.0, sde_kind=kind)
        assert torch.allclose(res.x0, _euler_traj(velocity, x)[-1], atol=1e-5)


def test_records_for_ode_methods(velocity: VelocityField) -> None:
    res = sample(velocity, _x(), GRID, "dpm2", record=True)
    assert res.latents.shape == (3, 6, 4, 6, 6)
    assert res.sde_steps.numel() == 0 and res.log_probs.shape == (3, 0) and res.stds.shape == (3, 0)


def test_float32_state_for_bf16_init(velocity: VelocityField) -> None:
    res = sample(velocity, _x().bfloat16(), GRID, "euler")
    assert res.x0.dtype == torch.float32


def test_argument_errors(velocity: VelocityField) -> None:
    x = _x()
    with pytest.raises(ValueError, match="unknown method"):
        sample(velocity, x, GRID, "heun")
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(velocity, x, [1.0, 0.5, 0.7, 0.0], "euler")
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample(velocity, x, [0.0, 0.5, 1.0], "euler")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sample(velocity, x, [1.2, 0.5, 0.0], "euler")
    with pytest.raises(ValueError, match="1-D"):
        sample(velocity, x, [1.0], "euler")
    with pytest.raises(ValueError, match="sde_window"):
        sample(velocity, x, GRID, "sde", sde_window=(3, 3))
    with pytest.raises(ValueError, match="sde_window"):
        sample(velocity, x, GRID, "sde", sde_window=(0, 7))
    with pytest.raises(ValueError, match="sde_window"):
        sample(velocity, x, GRID, "euler", sde_window=(0, 2))
    with pytest.raises(ValueError, match="sde_kind"):
        sample(velocity, x, GRID, "sde", sde_kind="dance")
    with pytest.raises(ValueError, match="noise_level"):
        sample(velocity, x, GRID, "sde", noise_level=-1.0)
    with pytest.raises(ValueError, match="shape"):
        sample(lambda x, s: x[:, :1], x, GRID, "euler")
