"""Euler and dpm2 against diffusers' schedulers on the same grids, whole trajectories."""

import math
from collections.abc import Callable

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

from edit_rl.flow import (
    ddim_step,
    dpm2_step,
    dpm_solver_2m_update,
    euler_step,
    kontext_sigmas,
    linear_sigmas,
    log_snr,
    x0_from_velocity,
)

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the `velocity` fixture

# diffusers' DPMSolverMultistepScheduler.__init__ emits a numpy DeprecationWarning.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

GRIDS = {
    "linear6_from1": torch.cat([linear_sigmas(6), torch.zeros(1, dtype=torch.float64)]),
    "kontext6_from1": kontext_sigmas(6, 1024),
    "kontext28_from1": kontext_sigmas(28, 4096),
    "from0.999": torch.tensor([0.999, 0.9, 0.75, 0.5, 0.3, 0.12, 0.0], dtype=torch.float64),
    "not_to_zero": torch.tensor([0.95, 0.8, 0.6, 0.45, 0.2, 0.05], dtype=torch.float64),
}


def _x_init() -> torch.Tensor:
    return torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _diffusers_run(sched, grid: torch.Tensor, x: torch.Tensor, velocity: VelocityField) -> list[torch.Tensor]:
    n = grid.numel() - 1
    sched.set_timesteps(num_inference_steps=n)
    sched.sigmas = grid.clone()
    sched.timesteps = grid[:-1] * 1000
    sched.set_begin_index(0)
    traj = []
    for j in range(n):
        v = velocity(x, grid[j].float().expand(x.shape[0]))
        x = sched.step(v, sched.timesteps[j], x, return_dict=False)[0]
        traj.append(x)
    return traj


def _dpm_scheduler() -> DPMSolverMultistepScheduler:
    return DPMSolverMultistepScheduler(
        use_flow_sigmas=True, prediction_type="flow_prediction", algorithm_type="dpmsolver++",
        solver_order=2, solver_type="midpoint",
    )


def _our_dpm2(grid: torch.Tensor, x: torch.Tensor, velocity: VelocityField) -> list[torch.Tensor]:
    traj, prev = [], None
    for j in range(grid.numel() - 1):
        v = velocity(x, grid[j].float().expand(x.shape[0]))
        x, prev = dpm2_step(x, v, grid, j, prev)
        traj.append(x)
    return traj


@pytest.mark.parametrize("name", list(GRIDS))
def test_euler_matches_diffusers(name: str, velocity: VelocityField) -> None:
    grid = GRIDS[name]
    theirs = _diffusers_run(FlowMatchEulerDiscreteScheduler(), grid, _x_init(), velocity)
    x = _x_init()
    for j in range(grid.numel() - 1):
        v = velocity(x, grid[j].float().expand(x.shape[0]))
        x = euler_step(x, v, float(grid[j]), float(grid[j + 1]))
        assert _rel_err(x, theirs[j]) <= 1e-5, (name, j)


@pytest.mark.parametrize("name", list(GRIDS))
def test_dpm2_matches_diffusers(name: str, velocity: VelocityField) -> None:
    grid = GRIDS[name]
    theirs = _diffusers_run(_dpm_scheduler(), grid, _x_init(), velocity)
    ours = _our_dpm2(grid, _x_init(), velocity)
    assert not any(torch.isnan(t).any() for t in theirs)
    for j, (a, b) in enumerate(zip(ours, theirs)):
        assert _rel_err(a, b) <= 1e-5, (name, j, _rel_err(a, b))


def test_dpm2_differs_from_euler(velocity: VelocityField) -> None:
    # Guards the comparison above against a solver that silently degenerates to Euler.
    grid = GRIDS["from0.999"]
    x = _x_init()
    euler = x
    for j in range(grid.numel() - 1):
        v = velocity(euler, grid[j].expand(3))
        euler = euler_step(euler, v, float(grid[j]), float(grid[j + 1]))
    assert _rel_err(_our_dpm2(grid, x, velocity)[-1], euler) > 1e-3


def test_ddim_eta0_equals_euler(velocity: VelocityField) -> None:
    x = _x_init()
    v = velocity(x, torch.full((3,), 0.7))
    for s, s_next in [(1.0, 0.8), (0.7, 0.4), (0.3, 0.0)]:
        x0 = x0_from_velocity(x, s, v)
        assert torch.allclose(ddim_step(x, x0, s, s_next), euler_step(x, v, s, s_next), atol=1e-5)


def test_log_snr() -> None:
    assert log_snr(0.5) == 0.0
    assert log_snr(0.2) == pytest.approx(math.log(4.0))
    assert log_snr(1.0) == -math.inf and log_snr(0.0) == math.inf


def test_2m_update_hand_formula() -> None:
    # x' = (s'/s) x - a' (e^-h - 1) (D0 + D1 / 2), D1 = (m0 - m1) / r0, r0 = h_prev / h.
    x, m0, m1 = torch.tensor([1.0]), torch.tensor([0.4]), torch.tensor([-0.2])
    sp, s, sn = 0.8, 0.6, 0.3
    lp, l, ln = math.log(0.2 / 0.8), math.log(0.4 / 0.6), math.log(0.7 / 0.3)
    h, r0 = ln - l, (l - lp) / (ln - l)
    expected = (sn / s) * 1.0 - 0.7 * (math.exp(-h) - 1) * (0.4 + 0.5 * (0.6 / r0))
    got = dpm_solver_2m_update(x, m0, m1, sp, s, sn)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_sigma1_start_second_step_is_first_order(velocity: VelocityField) -> None:
    """On a grid starting at exactly 1, lambda(1) = -inf, so r0 = inf and D1 = 0: step 1 is the
    first-order (DDIM / Euler) step, in DiffusionNFT's solver.py and in diffusers alike."""
    grid = GRIDS["kontext6_from1"]
    x = _x_init()
    v0 = velocity(x, grid[0].expand(3))
    x1, m0 = dpm2_step(x, v0, grid, 0, None)
    v1 = velocity(x1, grid[1].expand(3))
    x2, _ = dpm2_step(x1, v1, grid, 1, m0)
    assert torch.allclose(x2, euler_step(x1, v1, float(grid[1]), float(grid[2])), atol=1e-6)
    # ... and the history does not matter there, while it does on the next step.
    x2_other, m1 = dpm2_step(x1, v1, grid, 1, torch.zeros_like(m0))
    assert torch.equal(x2, x2_other)
    v2 = velocity(x2, grid[2].expand(3))
    x3, _ = dpm2_step(x2, v2, grid, 2, m1)
    assert _rel_err(x3, euler_step(x2, v2, float(grid[2]), float(grid[3]))) > 1e-4


def test_dpm2_needs_history(velocity: VelocityField) -> None:
    grid = GRIDS["linear6_from1"]
    x = _x_init()
    with pytest.raises(ValueError):
        dpm2_step(x, x, grid, 2, None)
    with pytest.raises(IndexError):
        dpm2_step(x, x, grid, 6, None)
