"""Group advantages, optimality probability, broadcasting (DiffusionNFT ref, MT-EditFlow eq. 8)."""

import math

import pytest
import torch

from edit_rl.rewards import (
    broadcast_trajectory_advantage,
    group_advantages,
    optimality_probability,
    per_turn_advantages,
)


def test_single_group_hand_worked():
    # [1, 0, 0, 1]: mean .5, deviations +-.5, population var = .25 -> std .5
    # A = +-.5 / (.5 + 1e-4)   (an unbiased std, sqrt(1/3), would give +-.866 instead)
    a = 0.5 / (0.5 + 1e-4)
    expected = torch.tensor([[a, -a, -a, a]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    for mode in ("global", "group"):  # one group: global std == group std
        torch.testing.assert_close(group_advantages(r, std_mode=mode), expected)


def test_global_vs_group_std():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.6, 0.4, 0.6, 0.4]], dtype=torch.float64)
    # group: g0 std .5 -> +-.5/.5001 ; g1 mean .5, std .1 -> +-.1/.1001
    a0, a1 = 0.5 / 0.5001, 0.1 / 0.1001
    torch.testing.assert_close(
        group_advantages(r, std_mode="group"),
        torch.tensor([[a0, -a0, -a0, a0], [a1, -a1, a1, -a1]], dtype=torch.float64),
    )
    # global: all 8 around mean .5: var = (4 * .25 + 4 * .01) / 8 = .13, std = sqrt(.13)
    # g0 -> +-.5/(sqrt(.13)+1e-4), g1 -> +-.1/(sqrt(.13)+1e-4); still centred on group mean
    s = math.sqrt(0.13) + 1e-4
    b0, b1 = 0.5 / s, 0.1 / s
    torch.testing.assert_close(
        group_advantages(r),  # default is global
        torch.tensor([[b0, -b0, -b0, b0], [b1, -b1, b1, -b1]], dtype=torch.float64),
    )


def test_global_std_centres_on_group_mean_not_batch_mean():
    # g0 all 1, g1 all 0: group-centred -> every advantage 0 (batch centring would give +-1)
    r = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert torch.equal(group_advantages(r), torch.zeros(2, 2))
    assert torch.equal(group_advantages(r, std_mode="group"), torch.zeros(2, 2))


def test_advantage_dtype_and_validation():
    assert group_advantages(torch.tensor([[1.0, 0.0]])).dtype == torch.float32
    assert group_advantages(torch.tensor([[1, 0]])).dtype == torch.float32
    with pytest.raises(ValueError, match="NaN"):
        group_advantages(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="shape"):
        group_advantages(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="std_mode"):
        group_advantages(torch.tensor([[1.0, 0.0]]), std_mode="batch")  # type: ignore[arg-type]


def test_optimality_probability():
    # r = clamp(clip(A,-5,5)/5/2 + .5, 0, 1): -5 -> 0, 0 -> .5, 2.5 -> .75, 5 -> 1, 7 -> 1, -7 -> 0
    adv = torch.tensor([-5.0, 0.0, 2.5, 5.0, 7.0, -7.0])
    torch.testing.assert_close(
        optimality_probability(adv), torch.tensor([0.0, 0.5, 0.75, 1.0, 1.0, 0.0])
    )
    # C = 2: A = 1 -> 1/2/2 + .5 = .75
    torch.testing.assert_close(optimality_probability(torch.tensor([1.0]), clip=2.0), torch.tensor([0.75]))


def test_broadcast_shape_and_values():
    adv = torch.tensor([[0.5, -1.0, 2.0], [3.0, 0.0, -0.25]])  # (N, G) = (2, 3)
    out = broadcast_trajectory_advantage(adv, num_turns=3, num_steps=6)
    assert out.shape == (2, 3, 3, 6)
    assert out.is_contiguous()
    for t in range(3):
        for s in range(6):
            assert torch.equal(out[:, :, t, s], adv)
    out[0, 0, 0, 0] = 99.0  # a copy, not a view of adv
    assert adv[0, 0] == 0.5


def test_per_turn_differs_from_broadcast_when_turns_differ():
    # one group, G = 2, T = 2: rollout 0 succeeds turn 1 only, rollout 1 turn 2 only
    r = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    # trajectory means are equal (.5, .5) -> broadcast advantage is 0 everywhere
    traj = group_advantages(r.mean(dim=2))
    assert torch.equal(broadcast_trajectory_advantage(traj, 2, 1)[..., 0], torch.zeros(1, 2, 2, dtype=torch.float64))
    # per turn: turn 1 rewards [1, 0] -> +-.5/(.5+1e-4); turn 2 [0, 1] -> -+.5/(.5+1e-4)
    a = 0.5 / 0.5001
    expected = torch.tensor([[[a, -a], [-a, a]]], dtype=torch.float64)
    for mode in ("global", "group"):
        torch.testing.assert_close(per_turn_advantages(r, std_mode=mode), expected)


def test_per_turn_uses_each_turns_own_statistics():
    # N = 2 groups, G = 2, T = 2. Turn 1 has a large spread, turn 2 a small one.
    r = torch.tensor(
        [[[1.0, 0.6], [0.0, 0.4]], [[1.0, 0.5], [1.0, 0.5]]], dtype=torch.float64
    )
    out = per_turn_advantages(r)  # global std per turn
    # turn 1 values [1, 0, 1, 1]: mean .75, var (.0625*3 + .5625)/4 = .1875
    s1 = math.sqrt(0.1875) + 1e-4
    # turn 2 values [.6, .4, .5, .5]: mean .5, var (.01 + .01)/4 = .005
    s2 = math.sqrt(0.005) + 1e-4
    expected = torch.tensor(
        [[[0.5 / s1, 0.1 / s2], [-0.5 / s1, -0.1 / s2]], [[0.0, 0.0], [0.0, 0.0]]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(out, expected)
