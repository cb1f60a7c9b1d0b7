"""DiffusionNFT loss: hand-worked values, signs, beta, mask, precision, timestep subsets.

Notation as in edit_rl/objectives/nft.py: x0_hat = x_t - t v, w = max(mean|x0_hat - x0|, 1e-5),
L = mean((x0_hat - x0)^2) / w, policy = mean_b[(r L+ + (1 - r) L-) / beta] * C.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edit_rl.objectives import (
    NFTLoss,
    nft_adaptive_weight,
    nft_implicit_velocities,
    nft_loss,
    nft_timestep_indices,
)

# ---------------------------------------------------------------------------------------------
# Two tiny samples (B=2, D=2), worked by hand.
#
# Sample A: x0 = [1, -1], x_t = [0.5, 0.5], t = 0.5, v_theta = [1, 2], v_old = [0, 1], r = 0.8
#   beta = 1:  v+ = v_theta = [1, 2];  v- = 2 v_old - v_theta = [-1, 0]
#     x0_hat+ = x_t - 0.5 v+ = [0, -0.5];  x0_hat+ - x0 = [-1, 0.5];  w+ = (1 + 0.5)/2 = 0.75
#     L+ = ((1 + 0.25)/2) / 0.75 = 0.625 / 0.75 = 0.8333333
#     x0_hat- = [1, 0.5];  x0_hat- - x0 = [0, 1.5];  w- = 0.75
#     L- = ((0 + 2.25)/2) / 0.75 = 1.125 / 0.75 = 1.5
#     policy = (0.8 * 0.8333333 + 0.2 * 1.5) / 1 * 5 = 0.9666667 * 5 = 4.8333333
#   beta = 0.5: v+ = 0.5 [1, 2] + 0.5 [0, 1] = [0.5, 1.5]
#               v- = 1.5 [0, 1] - 0.5 [1, 2] = [-0.5, 0.5]
#     x0_hat+ - x0 = [0.25, -0.25] - [1, -1] = [-0.75, 0.75]; w+ = 0.75; L+ = 0.5625 / 0.75 = 0.75
#     x0_hat- - x0 = [0.75, 0.25] - [1, -1] = [-0.25, 1.25]; w- = 0.75
#     L- = ((0.0625 + 1.5625)/2) / 0.75 = 0.8125 / 0.75 = 1.0833333
#     policy = (0.8 * 0.75 + 0.2 * 1.0833333) / 0.5 * 5 = 0.8166667 * 10 = 8.1666667
#
# Sample B: x0 = [0, 2], x_t = [1, 0], t = 1, v_theta = v_old = [0, 0], r = 0.25, beta = 1
#   v+ = v- = [0, 0];  x0_hat = x_t = [1, 0];  x0_hat - x0 = [1, -2];  w = 1.5
#   L+ = L- = ((1 + 4)/2) / 1.5 = 1.6666667;  policy = 1.6666667 * 5 = 8.3333333
# ---------------------------------------------------------------------------------------------


def _two_samples(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    f = lambda rows: torch.tensor(rows, dtype=dtype)  # noqa: E731
    return {
        "x0": f([[1.0, -1.0], [0.0, 2.0]]),
        "x_t": f([[0.5, 0.5], [1.0, 0.0]]),
        "t": f([0.5, 1.0]),
        "v_theta": f([[1.0, 2.0], [0.0, 0.0]]).requires_grad_(True),
        "v_old": f([[0.0, 1.0], [0.0, 0.0]]),
        "r": f([0.8, 0.25]),
    }


def _first(d: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: v[:1].detach().clone() for k, v in d.items()}
    out["v_theta"].requires_grad_(True)
    return out


def _call(d: dict[str, torch.Tensor], **kw) -> NFTLoss:
    return nft_loss(d["v_theta"], d["v_old"], d["x_t"], d["x0"], d["t"], d["r"], **kw)


def test_hand_worked_beta_1() -> None:
    out = _call(_first(_two_samples()))
    assert out.diagnostics.positive_loss.item() == pytest.approx(0.625 / 0.75, rel=1e-6)
    assert out.diagnostics.negative_loss.item() == pytest.approx(1.5, rel=1e-6)
    assert out.diagnostics.positive_weight.item() == pytest.approx(0.75, rel=1e-6)
    assert out.diagnostics.negative_weight.item() == pytest.approx(0.75, rel=1e-6)
    assert out.policy.item() == pytest.approx(4.8333333, rel=1e-6)
    assert out.diagnostics.unweighted_policy.item() == pytest.approx(0.9666667, rel=1e-6)
    assert out.kl.item() == 0.0 and out.total.item() == pytest.approx(4.8333333, rel=1e-6)


def test_hand_worked_beta_half() -> None:
    out = _call(_first(_two_samples()), beta=0.5)
    assert out.diagnostics.positive_loss.item() == pytest.approx(0.75, rel=1e-6)
    assert out.diagnostics.negative_loss.item() == pytest.approx(0.8125 / 0.75, rel=1e-6)
    assert out.policy.item() == pytest.approx(8.1666667, rel=1e-6)


def test_hand_worked_adv_clip_max_scales_policy() -> None:
    # policy = 0.9666667 * C; C = 2 -> 1.9333333
    out = _call(_first(_two_samples()), adv_clip_max=2.0)
    assert out.policy.item() == pytest.approx(1.9333333, rel=1e-6)


def test_hand_worked_kl_term() -> None:
    # v_ref = [0, 0]: mean((v_theta - v_ref)^2) = (1 + 4)/2 = 2.5; kl = 0.1 * 2.5 = 0.25
    d = _first(_two_samples())
    out = _call(d, v_ref=torch.zeros(1, 2), kl_weight=0.1)
    assert out.diagnostics.kl_div.item() == pytest.approx(2.5)
    assert out.kl.item() == pytest.approx(0.25)
    assert out.total.item() == pytest.approx(4.8333333 + 0.25, rel=1e-6)
    # default kl_weight 1e-4 -> 2.5e-4
    assert _call(d, v_ref=torch.zeros(1, 2)).kl.item() == pytest.approx(2.5e-4)


def test_hand_worked_batch_mean_and_diagnostics() -> None:
    # mean over the batch: (4.8333333 + 8.3333333) / 2 = 6.5833333
    out = _call(_two_samples())
    assert out.policy.item() == pytest.approx(6.5833333, rel=1e-6)
    # L+: (0.8333333 + 1.6666667)/2 = 1.25; L-: (1.5 + 1.6666667)/2 = 1.5833333
    assert out.diagnostics.positive_loss.item() == pytest.approx(1.25, rel=1e-6)
    assert out.diagnostics.negative_loss.item() == pytest.approx(1.5833333, rel=1e-6)
    # r = [0.8, 0.25]: mean 0.525, fraction > 0.5 = 1/2
    assert out.diagnostics.r_mean.item() == pytest.approx(0.525)
    assert out.diagnostics.frac_positive.item() == pytest.approx(0.5)
    # mean (v_theta - v_old)^2 = ((1 + 1)/2 + 0)/2 = 0.5
    assert out.diagnostics.old_deviation.item() == pytest.approx(0.5)
    assert out.diagnostics.num_samples.item() == 2.0
    assert set(out.diagnostics.metrics()) >= {"positive_loss", "negative_loss", "kl_div"}


def test_gradient_does_not_flow_through_weight() -> None:
    # r = 1, sample A: policy = C * mean((x_t - t v - x0)^2) / w with w constant
    #   d/dv = C * 2 (x0_hat - x0)(-t) / (D w) = 5 * 2 [-1, 0.5](-0.5) / (2 * 0.75)
    #        = 5 * [0.6666667, -0.3333333] = [3.3333333, -1.6666667]
    d = _first(_two_samples())
    d["r"] = torch.tensor([1.0])
    _call(d).total.backward()
    torch.testing.assert_close(d["v_theta"].grad, torch.tensor([[10 / 3, -5 / 3]]))
    # r = 0: only L-; v- = 2 v_old - v_theta, x0_hat- - x0 = [0, 1.5]
    #   dL-/dv- = 2 [0, 1.5](-0.5) / (2 * 0.75) = [0, -1];  dv-/dv_theta = -1 -> [0, 1];  * 5
    d = _first(_two_samples())
    d["r"] = torch.tensor([0.0])
    _call(d).total.backward()
    torch.testing.assert_close(d["v_theta"].grad, torch.tensor([[0.0, 5.0]]))


def test_old_and_ref_velocities_get_no_gradient() -> None:
    d = _first(_two_samples())
    d["v_old"].requires_grad_(True)
    v_ref = torch.zeros(1, 2, requires_grad=True)
    _call(d, v_ref=v_ref, kl_weight=0.5).total.backward()
    assert d["v_old"].grad is None and v_ref.grad is None
    assert d["v_theta"].grad is not None


def _numpy_nft(v_theta, v_old, x_t, x0, t, r, beta, C, v_ref, kl_weight, mask):
    """Independent float64 per-sample loop over flattened arrays."""
    v_theta, v_old, x_t, x0 = (np.asarray(a, np.float64) for a in (v_theta, v_old, x_t, x0))
    pol, kls, keep = [], [], []
    for i in range(v_theta.shape[0]):
        vt, vo, xt, xz = (a[i].ravel() for a in (v_theta, v_old, x_t, x0))
        terms = []
        for vel in (beta * vt + (1 - beta) * vo, (1 + beta) * vo - beta * vt):
            err = (xt - t[i] * vel) - xz
            w = max(np.abs(err).sum() / err.size, 1e-5)
            terms.append(float(np.sum(err * err) / err.size / w))
        pol.append((r[i] * terms[0] + (1 - r[i]) * terms[1]) / beta * C)
        kls.append(float(np.sum((vt - np.asarray(v_ref[i], np.float64).ravel()) ** 2) / vt.size))
        keep.append(float(mask[i]))
    keep = np.array(keep)
    policy = float(np.dot(pol, keep) / keep.sum())
    kl = kl_weight * float(np.dot(kls, keep) / keep.sum())
    return policy, kl


def test_matches_independent_numpy_on_random_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    B, shape = 5, (3, 4, 2)
    x0 = torch.randn(B, *shape, generator=g)
    eps = torch.randn(B, *shape, generator=g)
    t = torch.rand(B, generator=g)
    x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps
    v_theta = torch.randn(B, *shape, generator=g, requires_grad=True)
    v_old = v_theta.detach() + 0.3 * torch.randn(B, *shape, generator=g)
    v_ref = torch.randn(B, *shape, generator=g)
    r = torch.rand(B, generator=g)
    mask = torch.tensor([True, False, True, True, False])
    out = nft_loss(v_theta, v_old, x_t, x0, t, r, beta=0.7, adv_clip_max=5.0, v_ref=v_ref,
                   kl_weight=0.01, mask=mask)
    exp_policy, exp_kl = _numpy_nft(v_theta.detach().numpy(), v_old.numpy(), x_t.numpy(),
                                    x0.numpy(), t.numpy(), r.numpy(), 0.7, 5.0, v_ref.numpy(),
                                    0.01, mask.numpy())
    assert out.policy.item() == pytest.approx(exp_policy, rel=1e-5)
    assert out.kl.item() == pytest.approx(exp_kl, rel=1e-5)
    assert out.total.item() == pytest.approx(exp_policy + exp_kl, rel=1e-5)


@pytest.mark.parametrize("beta", [0.3, 1.0, 2.0])
def test_implicit_velocities_symmetric_about_old(beta: float) -> None:
    g = torch.Generator().manual_seed(1)
    v_theta, v_old = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    v_pos, v_neg = nft_implicit_velocities(v_theta, v_old, beta)
    torch.testing.assert_close(v_pos - v_old, beta * (v_theta - v_old))
    torch.testing.assert_close(v_neg - v_old, -beta * (v_theta - v_old))
    if beta == 1.0:
        torch.testing.assert_close(v_pos, v_theta, rtol=0, atol=0)
        torch.testing.assert_close(v_neg, 2 * v_old - v_theta)


def _flow_setup(seed: int, t_value: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    x0, eps = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    t = torch.full((2,), t_value)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    target = eps - x0
    v = (target + 0.5 * torch.randn(2, 8, generator=g)).requires_grad_(True)
    return x0, x_t, t, target, v


@pytest.mark.parametrize("r_value, closer", [(1.0, True), (0.0, False)])
def test_one_gradient_step_sign(r_value: float, closer: bool) -> None:
    # on-policy start (v_old = v_theta): r = 1 pulls v_theta toward eps - x0, r = 0 pushes it away
    x0, x_t, t, target, v = _flow_setup(seed=2)
    v_old = v.detach().clone()
    r = torch.full((2,), r_value)
    out = nft_loss(v, v_old, x_t, x0, t, r)
    out.total.backward()
    dist_before = (v.detach() - target).norm(dim=1)
    with torch.no_grad():
        v_new = v - 0.01 * v.grad
    dist_after = (v_new - target).norm(dim=1)
    assert bool(((dist_after < dist_before) if closer else (dist_after > dist_before)).all())
    loss_after = nft_loss(v_new, v_old, x_t, x0, t, r).total
    assert loss_after.item() < out.total.item()


def test_mask_drops_samples_and_their_gradient() -> None:
    d = _two_samples()
    out = _call(d, mask=torch.tensor([True, False]))
    assert out.policy.item() == pytest.approx(4.8333333, rel=1e-6)  # sample A alone
    out.total.backward()
    assert torch.equal(d["v_theta"].grad[1], torch.zeros(2))
    assert d["v_theta"].grad[0].abs().sum() > 0
    assert out.diagnostics.num_samples.item() == 1.0
    d = _two_samples()
    out = _call(d, mask=torch.tensor([0.0, 1.0]))
    assert out.policy.item() == pytest.approx(8.3333333, rel=1e-6)  # sample B alone
    # sample B's own gradient is non-zero without the mask:
    #   r g+ + (1 - r) g- with g+ = 2 [1, -2](-1)/(2 * 1.5) = [-2/3, 4/3], g- = -g+
    #   = (0.25 - 0.75) [-2/3, 4/3] = [1/3, -2/3], times C = 5, divided by the batch of 2
    d = _two_samples()
    _call(d).total.backward()
    torch.testing.assert_close(d["v_theta"].grad[1], torch.tensor([5 / 6, -5 / 3]))


def test_masked_out_non_finite_sample_does_not_poison_the_loss() -> None:
    d = _two_samples()
    with torch.no_grad():
        d["v_theta"][1] = float("nan")
    out = _call(d, mask=torch.tensor([True, False]))
    assert out.policy.item() == pytest.approx(4.8333333, rel=1e-6)
    assert all(np.isfinite(v) for v in out.diagnostics.metrics().values())
    out.total.backward()
    assert torch.isfinite(d["v_theta"].grad[0]).all()


def test_mask_all_ones_equals_no_mask() -> None:
    a = _call(_two_samples()).total
    b = _call(_two_samples(), mask=torch.ones(2, dtype=torch.bool)).total
    torch.testing.assert_close(a, b)


def test_all_zero_mask_gives_zero_loss_with_graph_and_no_nan() -> None:
    d = _two_samples()
    v_ref = torch.zeros(2, 2)
    out = _call(d, v_ref=v_ref, kl_weight=0.1, mask=torch.zeros(2))
    assert out.total.item() == 0.0 and out.policy.item() == 0.0 and out.kl.item() == 0.0
    assert out.total.requires_grad
    out.total.backward()
    assert torch.equal(d["v_theta"].grad, torch.zeros(2, 2))
    for name, value in out.diagnostics.metrics().items():
        assert value == 0.0, name


def test_weights_are_float64_detached_and_clipped() -> None:
    # float32 inputs: the weight and the policy loss are float64 (reference .double())
    d = _first(_two_samples(torch.float32))
    out = _call(d)
    assert out.policy.dtype == torch.float64 and out.total.dtype == torch.float64
    w = nft_adaptive_weight(d["x_t"] - 0.5 * d["v_theta"], d["x0"])
    assert w.dtype == torch.float64 and not w.requires_grad
    assert w.item() == pytest.approx(0.75)
    # |x0_hat - x0| = 1e-7 everywhere: w = max(1e-7, 1e-5) = 1e-5
    #   L = (1e-7)^2 / 1e-5 = 1e-9 (an unclipped weight would give 1e-7)
    z = torch.zeros(1, 4, dtype=torch.float64)
    out = nft_loss(z.clone().requires_grad_(True), z, torch.full((1, 4), 1e-7, dtype=torch.float64),
                   z, 0.5, torch.tensor([1.0]))
    assert out.diagnostics.positive_weight.item() == pytest.approx(1e-5)
    assert out.diagnostics.positive_loss.item() == pytest.approx(1e-9, rel=1e-9)
    assert out.policy.item() == pytest.approx(5e-9, rel=1e-9)


def test_t_layouts_agree() -> None:
    base = _call(_two_samples()).total
    for t in (torch.tensor([0.5, 1.0]), torch.tensor([[0.5], [1.0]])):
        d = _two_samples()
        d["t"] = t
        torch.testing.assert_close(_call(d).total, base)
    # one number for all samples
    d = _first(_two_samples())
    d["t"] = 0.5
    assert _call(d).policy.item() == pytest.approx(4.8333333, rel=1e-6)


def test_invalid_arguments() -> None:
    d = _two_samples()
    with pytest.raises(ValueError, match="beta"):
        _call(d, beta=0.0)
    with pytest.raises(ValueError, match="v_old"):
        nft_loss(d["v_theta"], d["v_old"][:, :1], d["x_t"], d["x0"], d["t"], d["r"])
    with pytest.raises(ValueError, match="r"):
        nft_loss(d["v_theta"], d["v_old"], d["x_t"], d["x0"], d["t"], torch.ones(3))
    with pytest.raises(ValueError, match="mask"):
        _call(d, mask=torch.ones(3))
    with pytest.raises(ValueError, match="v_ref"):
        _call(d, v_ref=torch.zeros(2, 3))


# --------------------------------------------------------------------------- timestep subsets


def test_timestep_indices_shape_and_permutation() -> None:
    g = torch.Generator().manual_seed(0)
    idx = nft_timestep_indices(64, 6, generator=g)
    assert idx.shape == (64, 5) and idx.dtype == torch.int64  # int(0.99 * 6) = 5
    assert int(idx.min()) >= 0 and int(idx.max()) <= 5
    for row in idx.tolist():
        assert len(set(row)) == 5  # distinct: a prefix of a permutation
    assert len({tuple(row) for row in idx.tolist()}) > 1  # per-sample, not one shared order
    full = nft_timestep_indices(8, 6, fraction=1.0, generator=g)
    assert torch.equal(full.sort(dim=1).values, torch.arange(6).expand(8, 6))
    assert nft_timestep_indices(3, 10, generator=g).shape == (3, 9)  # int(9.9) = 9
    one = nft_timestep_indices(4, 1, generator=g)
    assert torch.equal(one, torch.zeros(4, 1, dtype=torch.int64))
    assert nft_timestep_indices(4, 1, fraction=0.5, generator=g).shape == (4, 1)  # at least 1


def test_timestep_indices_reproducible_and_uniform() -> None:
    a = nft_timestep_indices(5, 6, generator=torch.Generator().manual_seed(3))
    b = nft_timestep_indices(5, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # the excluded index (the 6th of the permutation) is uniform over the 6 sigmas
    full = nft_timestep_indices(6000, 6, fraction=1.0, generator=torch.Generator().manual_seed(4))
    counts = torch.bincount(full[:, -1], minlength=6)
    assert int(counts.min()) > 850 and int(counts.max()) < 1150  # expected 1000 each


def test_timestep_indices_invalid() -> None:
    with pytest.raises(ValueError):
        nft_timestep_indices(2, 0)
    with pytest.raises(ValueError):
        nft_timestep_indices(2, 6, fraction=0.0)
    with pytest.raises(ValueError):
        nft_timestep_indices(2, 6, fraction=1.5)
