"""Reward- vs advantage-level fusion (MT-EditFlow eqs. 6/17 and 7/18/19, appendix E.1)."""

import math

import pytest
import torch

from edit_rl.rewards import fused_advantages, group_advantages, within_group_variance

R_IF = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
R_CC = torch.tensor([[0.2, 0.4, 0.6, 0.8]], dtype=torch.float64)


def _corr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1])


def test_advantage_level_hand_worked():
    # A_IF: mean .5, std .5 -> [.5, -.5, -.5, .5] / .5001
    # A_CC: mean .5, dev [-.3, -.1, .1, .3], var (.09+.01+.01+.09)/4 = .05 -> / (sqrt(.05)+1e-4)
    # A = A_IF + .5 A_CC
    a_if = torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=torch.float64) / 0.5001
    a_cc = torch.tensor([-0.3, -0.1, 0.1, 0.3], dtype=torch.float64) / (math.sqrt(0.05) + 1e-4)
    out = fused_advantages(R_IF, R_CC, level="advantage", cc_weight=0.5, std_mode="group")
    torch.testing.assert_close(out.advantages, (a_if + 0.5 * a_cc)[None])
    assert out.level == "advantage" and out.cc_weight == 0.5


def test_reward_level_hand_worked():
    # R = R_IF + .5 R_CC = [1.1, .2, .3, 1.4]; mean 3/4 = .75; dev [.35, -.55, -.45, .65]
    # var = (.1225 + .3025 + .2025 + .4225)/4 = .2625 -> A = dev / (sqrt(.2625) + 1e-4)
    dev = torch.tensor([[0.35, -0.55, -0.45, 0.65]], dtype=torch.float64)
    out = fused_advantages(R_IF, R_CC, level="reward", cc_weight=0.5, std_mode="group")
    torch.testing.assert_close(out.advantages, dev / (math.sqrt(0.2625) + 1e-4))


def test_advantage_level_is_invariant_to_cc_scale_reward_level_is_not():
    gen = torch.Generator().manual_seed(0)
    r_if = torch.rand(6, 8, generator=gen, dtype=torch.float64)
    r_cc = torch.rand(6, 8, generator=gen, dtype=torch.float64)
    for mode in ("global", "group"):
        base = fused_advantages(r_if, r_cc, cc_weight=0.3, std_mode=mode).advantages
        scaled = fused_advantages(r_if, 100.0 * r_cc, cc_weight=0.3, std_mode=mode).advantages
        # only the 1e-4 eps is not scale-free: relative change <= ~1e-4 / std(R_CC) ~ 4e-4
        torch.testing.assert_close(scaled, base, rtol=0, atol=2e-3)

        rb = fused_advantages(r_if, r_cc, level="reward", cc_weight=0.3, std_mode=mode).advantages
        rs = fused_advantages(r_if, 100.0 * r_cc, level="reward", cc_weight=0.3, std_mode=mode).advantages
        assert (rs - rb).abs().max() > 0.5
        # with R_CC x100 the fused reward is essentially 30 R_CC: A ~ A_CC, IF is drowned out
        a_cc = group_advantages(r_cc, std_mode=mode)
        assert _corr(rs, a_cc) > 0.999
        # IF survives advantage-level fusion (A = A_IF + .3 A_CC, corr ~ 1/sqrt(1.09) = .96)
        # but is drowned out at reward level
        a_if = group_advantages(r_if, std_mode=mode)
        assert _corr(scaled, a_if) > 0.9
        assert abs(_corr(rs, a_if)) < 0.5  # ~ the chance IF-CC correlation of the sample (.15-.2)


def test_logged_statistics():
    # within-group var: IF .25, CC .05 -> ratio 5 (the paper reports ~5.8 for its runs)
    out = fused_advantages(R_IF, R_CC, cc_weight=0.5, std_mode="group")
    assert out.if_within_group_var == pytest.approx(0.25)
    assert out.cc_within_group_var == pytest.approx(0.05)
    assert out.if_cc_var_ratio == pytest.approx(5.0)
    # A_IF = +-.5/.5001 -> mean 0, std .5/.5001
    assert out.if_adv_mean == pytest.approx(0.0, abs=1e-12)
    assert out.if_adv_std == pytest.approx(0.5 / 0.5001)
    # A_CC std = sqrt(.05)/(sqrt(.05)+1e-4)
    assert out.cc_adv_std == pytest.approx(math.sqrt(0.05) / (math.sqrt(0.05) + 1e-4))
    assert out.adv_mean == pytest.approx(0.0, abs=1e-12)
    assert out.adv_std == pytest.approx(float(out.advantages.std(unbiased=False)))
    stats = out.stats()
    assert set(stats) == {
        "cc_weight", "if_adv_mean", "if_adv_std", "cc_adv_mean", "cc_adv_std", "adv_mean",
        "adv_std", "if_within_group_var", "cc_within_group_var", "if_cc_var_ratio",
    }
    assert all(isinstance(v, float) for v in stats.values())


def test_within_group_variance_averages_groups_and_ratio_edge_cases():
    # g0 [1, 0] var .25, g1 [1, 1] var 0 -> mean .125
    # (the global variance of [1, 0, 1, 1] would be: mean .75, (3 * .0625 + .5625)/4 = .1875)
    assert within_group_variance(torch.tensor([[1.0, 0.0], [1.0, 1.0]])) == pytest.approx(0.125)
    flat = torch.full((1, 4), 0.7)
    assert fused_advantages(R_IF.float(), flat, cc_weight=0.1).if_cc_var_ratio == math.inf
    assert math.isnan(fused_advantages(flat, flat, cc_weight=0.1).if_cc_var_ratio)


def test_zero_weight_is_if_only_and_validation():
    out = fused_advantages(R_IF, R_CC, cc_weight=0.0)
    torch.testing.assert_close(out.advantages, group_advantages(R_IF))
    with pytest.raises(ValueError, match="shapes differ"):
        fused_advantages(R_IF, R_CC[:, :3], cc_weight=0.1)
    with pytest.raises(ValueError, match="NaN"):
        fused_advantages(R_IF, torch.tensor([[0.1, float("nan"), 0.2, 0.3]]), cc_weight=0.1)
    with pytest.raises(ValueError, match="lambda"):
        fused_advantages(R_IF, R_CC, cc_weight=-0.1)
    with pytest.raises(ValueError, match="fusion level"):
        fused_advantages(R_IF, R_CC, level="loss", cc_weight=0.1)  # type: ignore[arg-type]
