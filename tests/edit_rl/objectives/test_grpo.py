"""Flow-GRPO loss: hand-worked values, clipping, gradient signs, KL, mask, step selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edit_rl.objectives import (
    clipped_surrogate,
    gaussian_mean_kl,
    grpo_loss,
    grpo_train_step_indices,
    nonzero_advantage_mask,
)

# ---------------------------------------------------------------------------------------------
# Four samples, clip_range eps = 0.05, adv_clip_max = 5, old log-prob 0:
#   log_prob = [0, 0.1, -0.1, 5e-5]  ->  ratio = [1, 1.1051709, 0.9048374, 1.0000500]
#   A        = [1, 1, -2, 7 -> 5 (clipped)]
#   l_i = max(-A rho, -A clip(rho, 0.95, 1.05)):
#     l1 = max(-1, -1) = -1
#     l2 = max(-1.1051709, -1.05) = -1.05                  (clipped branch: no gradient)
#     l3 = max(1.8096748, 1.9) = 1.9                       (clipped branch: no gradient)
#     l4 = max(-5.0002500, -5.0002500) = -5.0002500        (inside the trust region)
#   policy = (-1 - 1.05 + 1.9 - 5.00025) / 4 = -5.15025 / 4 = -1.2875625
#   d policy / d log_prob = -A rho / 4 where unclipped: [-0.25, 0, 0, -5 * 1.00005 / 4]
#   clip_frac = 2/4 (samples 2, 3); high = 1/4 (2); low = 1/4 (3)
#   approx_kl = 0.5 * (0 + 0.01 + 0.01 + 2.5e-9) / 4 = 0.0025000003125
#   ratio_mean = (1 + 1.1051709 + 0.9048374 + 1.0000500) / 4 = 1.0025146
# ---------------------------------------------------------------------------------------------
LOG_PROB = [0.0, 0.1, -0.1, 5e-5]
ADV = [1.0, 1.0, -2.0, 7.0]


def _hand(**kw):
    lp = torch.tensor(LOG_PROB, dtype=torch.float64, requires_grad=True)
    out = grpo_loss(lp, torch.zeros(4, dtype=torch.float64), torch.tensor(ADV, dtype=torch.float64),
                    clip_range=0.05, **kw)
    return lp, out


def test_hand_worked_policy_and_diagnostics() -> None:
    lp, out = _hand()
    assert out.policy.item() == pytest.approx(-1.2875625, rel=1e-7)
    assert out.total.item() == pytest.approx(-1.2875625, rel=1e-7) and out.kl.item() == 0.0
    d = out.diagnostics
    assert d.clip_frac.item() == pytest.approx(0.5)
    assert d.clip_frac_high.item() == pytest.approx(0.25)
    assert d.clip_frac_low.item() == pytest.approx(0.25)
    assert d.approx_kl.item() == pytest.approx(0.0025000003125, rel=1e-9)
    assert d.ratio_mean.item() == pytest.approx(
        (1 + math.exp(0.1) + math.exp(-0.1) + math.exp(5e-5)) / 4, rel=1e-12)
    assert d.advantage_mean.item() == pytest.approx(1.25)  # (1 + 1 - 2 + 5) / 4
    assert d.num_samples.item() == 4.0
    out.total.backward()
    torch.testing.assert_close(
        lp.grad, torch.tensor([-0.25, 0.0, 0.0, -5 * math.exp(5e-5) / 4], dtype=torch.float64))


def test_clipping_is_one_sided_pessimistic() -> None:
    # A > 0 but ratio below 1 - eps: unclipped -A rho = -0.9048 > clipped -0.95 -> gradient flows
    # A < 0 but ratio above 1 + eps: unclipped 1.1052 > clipped 1.05 -> gradient flows
    lp = torch.tensor([-0.1, 0.1], requires_grad=True)
    adv = torch.tensor([1.0, -1.0])
    loss = clipped_surrogate(torch.exp(lp), adv, 0.05)
    torch.testing.assert_close(loss.detach(), torch.tensor([-math.exp(-0.1), math.exp(0.1)]))
    loss.sum().backward()
    torch.testing.assert_close(lp.grad, torch.tensor([-math.exp(-0.1), math.exp(0.1)]))


def test_clipping_stops_gradient_outside_trust_region() -> None:
    # A > 0 with ratio > 1 + eps, and A < 0 with ratio < 1 - eps: exactly zero gradient
    lp = torch.tensor([0.1, -0.1], requires_grad=True)
    out = grpo_loss(lp, torch.zeros(2), torch.tensor([1.0, -1.0]), clip_range=0.05)
    out.total.backward()
    assert torch.equal(lp.grad, torch.zeros(2))


def test_zero_advantage_gives_exactly_zero_gradient() -> None:
    lp = torch.tensor([0.3, -0.2, 0.0], requires_grad=True)
    out = grpo_loss(lp, torch.tensor([0.1, 0.1, 0.0]), torch.zeros(3), clip_range=0.5)
    out.total.backward()
    assert out.policy.item() == 0.0
    assert torch.equal(lp.grad, torch.zeros(3))


@pytest.mark.parametrize("adv, direction", [(2.0, 1.0), (-2.0, -1.0)])
def test_gradient_step_moves_log_prob_with_advantage_sign(adv: float, direction: float) -> None:
    # on-policy (ratio 1, inside the trust region): a descent step raises log p for A > 0
    lp = torch.tensor([-1.3, 0.4], requires_grad=True)
    old = lp.detach().clone()
    grpo_loss(lp, old, torch.full((2,), adv)).total.backward()  # default eps 1e-4
    with torch.no_grad():
        new = lp - 1e-5 * lp.grad
    assert bool((direction * (new - old) > 0).all())


def test_advantages_clipped_to_adv_clip_max() -> None:
    # A = 7 and A = 100 both act as 5 on-policy: loss = -5 * 1 each
    lp = torch.zeros(2, requires_grad=True)
    out = grpo_loss(lp, torch.zeros(2), torch.tensor([7.0, 100.0]))
    assert out.policy.item() == pytest.approx(-5.0)
    out = grpo_loss(lp, torch.zeros(2), torch.tensor([7.0, -100.0]), adv_clip_max=2.0)
    assert out.policy.item() == pytest.approx(0.0)  # (-2 + 2) / 2


def test_hand_worked_kl() -> None:
    # mean = [[1, 2], [0, 0]], ref = [[0, 0], [0, 1]], std = [1, 0.5]
    #   sample 1: ((1 + 4)/2) / (2 * 1^2)    = 2.5 / 2 = 1.25
    #   sample 2: ((0 + 1)/2) / (2 * 0.5^2)  = 0.5 / 0.5 = 1.0
    #   mean 1.125; kl_beta 0.04 -> 0.045
    mean = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[0.0, 0.0], [0.0, 1.0]], requires_grad=True)
    torch.testing.assert_close(gaussian_mean_kl(mean, ref, torch.tensor([1.0, 0.5])),
                               torch.tensor([1.25, 1.0]))
    lp = torch.zeros(2, requires_grad=True)
    out = grpo_loss(lp, torch.zeros(2), torch.tensor([1.0, -1.0]), mean=mean, ref_mean=ref,
                    std=torch.tensor([[1.0], [0.5]]), kl_beta=0.04)
    assert out.diagnostics.kl_div.item() == pytest.approx(1.125)
    assert out.kl.item() == pytest.approx(0.045)
    assert out.total.item() == pytest.approx(out.policy.item() + 0.045)
    out.total.backward()
    # d/dmu = kl_beta / B * (mu - ref) / (D std^2): sample 1 [1, 2] / 2 * 0.02 = [0.01, 0.02]
    #   sample 2: [0, -1] / (2 * 0.25) * 0.02 = [0, -0.04]
    torch.testing.assert_close(mean.grad, torch.tensor([[0.01, 0.02], [0.0, -0.04]]))
    assert ref.grad is None
    # one std for all: std = 2 -> [2.5 / 8, 0.5 / 8] = [0.3125, 0.0625], mean 0.1875
    torch.testing.assert_close(gaussian_mean_kl(mean, ref, 2.0), torch.tensor([0.3125, 0.0625]))


def test_kl_over_4d_latents_means_over_non_batch_dims() -> None:
    g = torch.Generator().manual_seed(0)
    mean, ref = torch.randn(3, 4, 2, 2, generator=g), torch.randn(3, 4, 2, 2, generator=g)
    std = torch.rand(3, 1, 1, 1, generator=g) + 0.5
    exp = [float(np.mean((mean[i].numpy() - ref[i].numpy()) ** 2)) / (2 * float(std[i]) ** 2)
           for i in range(3)]
    torch.testing.assert_close(gaussian_mean_kl(mean, ref, std), torch.tensor(exp))


def test_kl_reported_but_not_weighted_when_beta_zero() -> None:
    mean = torch.tensor([[1.0, 2.0]], requires_grad=True)
    out = grpo_loss(torch.zeros(1), torch.zeros(1), torch.ones(1), mean=mean,
                    ref_mean=torch.zeros(1, 2), std=1.0)
    assert out.diagnostics.kl_div.item() == pytest.approx(1.25)
    assert out.kl.item() == 0.0


def test_mask_semantics() -> None:
    lp = torch.tensor(LOG_PROB, requires_grad=True)
    out = grpo_loss(lp, torch.zeros(4), torch.tensor(ADV), clip_range=0.05,
                    mask=torch.tensor([True, False, False, True]))
    # kept samples 1 and 4: (-1 - 5.00025) / 2
    assert out.policy.item() == pytest.approx((-1 - 5 * math.exp(5e-5)) / 2, rel=1e-6)
    out.total.backward()
    assert lp.grad[1] == 0 and lp.grad[2] == 0
    assert out.diagnostics.num_samples.item() == 2.0
    assert out.diagnostics.clip_frac.item() == 0.0
    # no sample kept: exact zero with a graph, zero gradient, no NaN
    lp = torch.tensor(LOG_PROB, requires_grad=True)
    out = grpo_loss(lp, torch.zeros(4), torch.tensor(ADV), mask=torch.zeros(4),
                    mean=torch.ones(4, 3, requires_grad=True), ref_mean=torch.zeros(4, 3),
                    std=1.0, kl_beta=0.1)
    assert out.total.item() == 0.0 and out.total.requires_grad
    out.total.backward()
    assert torch.equal(lp.grad, torch.zeros(4))
    assert all(v == 0.0 for v in out.diagnostics.metrics().values())


def test_masked_out_non_finite_sample_does_not_poison_the_loss() -> None:
    lp = torch.tensor([0.0, float("nan"), 0.0], requires_grad=True)
    out = grpo_loss(lp, torch.zeros(3), torch.tensor([1.0, 1.0, -1.0]),
                    mask=torch.tensor([True, False, True]))
    assert out.policy.item() == pytest.approx(0.0)  # (-1 + 1) / 2
    assert math.isfinite(out.diagnostics.ratio_mean.item())
    out.total.backward()
    # kept samples' gradients are exact (-A rho / 2); the NaN sample's own gradient is not defined
    assert lp.grad[0].item() == pytest.approx(-0.5) and lp.grad[2].item() == pytest.approx(0.5)


def test_matches_independent_numpy_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(5)
    B = 16
    lp = (0.02 * torch.randn(B, generator=g)).requires_grad_(True)
    old = 0.02 * torch.randn(B, generator=g)
    adv = 3 * torch.randn(B, generator=g)
    out = grpo_loss(lp, old, adv, clip_range=0.01)
    expected = []
    for a, new_lp, old_lp in zip(adv.tolist(), lp.tolist(), old.tolist()):
        a = min(max(a, -5.0), 5.0)
        rho = math.exp(new_lp - old_lp)
        expected.append(max(-a * rho, -a * min(max(rho, 0.99), 1.01)))
    assert out.policy.item() == pytest.approx(sum(expected) / B, rel=1e-5)


def test_invalid_arguments() -> None:
    z = torch.zeros(2)
    with pytest.raises(ValueError, match="kl_beta"):
        grpo_loss(z, z, z, kl_beta=0.1)
    with pytest.raises(ValueError, match="together"):
        grpo_loss(z, z, z, mean=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="old_log_prob"):
        grpo_loss(z, torch.zeros(3), z)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        grpo_loss(torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="std"):
        grpo_loss(z, z, z, mean=torch.zeros(2, 3), ref_mean=torch.zeros(2, 3),
                  std=torch.ones(3), kl_beta=0.1)


@pytest.mark.parametrize(
    "num_steps, fraction, expected",
    [
        (10, 0.99, list(range(9))),  # int(9.9) = 9: the last step is excluded
        (6, 0.99, list(range(5))),   # int(5.94) = 5
        (100, 0.99, list(range(99))),
        (6, 1.0, list(range(6))),    # flow_grpo base.py default: every step
        (10, 0.5, list(range(5))),
        (1, 0.99, [0]),              # at least one step (reference: none)
    ],
)
def test_grpo_train_step_indices(num_steps: int, fraction: float, expected: list[int]) -> None:
    assert grpo_train_step_indices(num_steps, fraction) == expected


def test_grpo_train_step_indices_default_and_invalid() -> None:
    assert grpo_train_step_indices(6) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        grpo_train_step_indices(0)
    with pytest.raises(ValueError):
        grpo_train_step_indices(6, 0.0)


def test_nonzero_advantage_mask() -> None:
    assert nonzero_advantage_mask(torch.tensor([0.0, 1.5, -0.2, 0.0])).tolist() == [
        False, True, True, False]
    # (B, T): dropped only if every step's advantage is exactly 0
    per_step = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1e-6], [2.0, 2.0, 2.0], [1.0, -1.0, 0.0]])
    assert nonzero_advantage_mask(per_step).tolist() == [False, True, True, True]
    assert nonzero_advantage_mask(torch.zeros(0)).shape == (0,)
