"""Edit-R1 low-std group filter and ban list (Edit-R1 section 2.3, reference train_nft_kontext.py)."""

import json

import pytest
import torch

from edit_rl.rewards import PromptBanList, group_filter, group_mean_std


def _batch() -> torch.Tensor:
    return torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0],  # g0 mu 1,     sigma 0      -> ban, drop, zero std
            [0.0, 0.0, 0.0, 0.0],  # g1 mu 0,     sigma 0      -> drop (sigma), no ban (mu), zero std
            [1.0, 0.0, 0.0, 1.0],  # g2 mu .5,    sigma .5     -> keep
            [1.0, 1.0, 1.0, 0.9],  # g3 mu .975,  var (3*.025^2 + .075^2)/4 = .001875, sigma .0433 -> ban, drop
            [1.0, 1.0, 1.0, 0.7],  # g4 mu .925,  var (3*.075^2 + .225^2)/4 = .016875, sigma .1299 -> drop (mu), no ban
            [0.3, 0.3, 0.3, 0.2],  # g5 mu .275,  var (3*.025^2 + .075^2)/4 = .001875, sigma .0433 -> drop (sigma), no ban
        ],
        dtype=torch.float64,
    )


IDS = ["p0", "p1", "p2", "p3", "p4", "p5"]


def test_keep_and_ban_decisions_defaults():
    res = group_filter(_batch(), IDS)
    assert res.group_keep.tolist() == [False, False, True, False, False, False]
    assert res.sample_mask.shape == (6, 4)
    assert res.sample_mask.dtype == torch.bool
    assert res.sample_mask.tolist() == [[k] * 4 for k in res.group_keep.tolist()]
    assert res.banned_prompt_ids == ("p0", "p3")
    assert res.num_banned == 2
    assert res.kept_fraction == pytest.approx(1 / 6)
    assert res.zero_std_ratio == pytest.approx(2 / 6)
    sig3 = 0.001875**0.5
    sig4 = 0.016875**0.5
    torch.testing.assert_close(
        res.group_std, torch.tensor([0.0, 0.0, 0.5, sig3, sig4, sig3], dtype=torch.float64)
    )
    torch.testing.assert_close(
        res.group_mean, torch.tensor([1.0, 0.0, 0.5, 0.975, 0.925, 0.275], dtype=torch.float64)
    )
    assert res.mean_group_std == pytest.approx((0.5 + 2 * sig3 + sig4) / 6)
    assert res.stats()["num_banned"] == 2.0


def test_exact_thresholds_are_neither_kept_nor_banned():
    # binary-exact numbers: [.25, .75] -> mu .5, sigma .25 exactly
    r = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    at = group_filter(r, ["a"], tau_mu=0.5, tau_sigma=0.25)  # mu == tau_mu, sigma == tau_sigma
    assert at.group_keep.tolist() == [False] and at.banned_prompt_ids == ()
    # sigma == tau_sigma, mu above: strict "<" for ban -> not banned
    assert group_filter(r, ["a"], tau_mu=0.25, tau_sigma=0.25).banned_prompt_ids == ()
    # mu == tau_mu, sigma below: strict ">" for ban -> not banned
    assert group_filter(r, ["a"], tau_mu=0.5, tau_sigma=0.5).banned_prompt_ids == ()
    # just inside on both sides -> kept / banned
    assert group_filter(r, ["a"], tau_mu=0.5 + 1e-9, tau_sigma=0.25 - 1e-9).group_keep.tolist() == [True]
    assert group_filter(r, ["a"], tau_mu=0.5 - 1e-9, tau_sigma=0.25 + 1e-9).banned_prompt_ids == ("a",)


def test_disabled_keeps_everything_but_still_reports():
    res = group_filter(_batch(), IDS, enabled=False)
    assert res.group_keep.all() and res.sample_mask.all()
    assert res.banned_prompt_ids == () and res.num_banned == 0
    assert res.kept_fraction == 1.0
    assert res.zero_std_ratio == pytest.approx(2 / 6)


def test_zero_std_uses_tiny_eps_and_population_std():
    # float32 [.3]*12 may leave a rounding-sized std; 1e-9 spread still counts as zero
    r = torch.tensor([[0.3] * 12], dtype=torch.float32)
    assert group_filter(r, ["a"]).zero_std_ratio == 1.0
    r2 = torch.tensor([[0.5, 0.5 + 1e-9], [0.0, 1.0]], dtype=torch.float64)
    assert group_filter(r2, ["a", "b"]).zero_std_ratio == 0.5
    # population std: [0, 1] -> .5 (unbiased would be .707)
    _, sigma = group_mean_std(torch.tensor([[0.0, 1.0]]))
    assert sigma.item() == pytest.approx(0.5)


def test_duplicate_prompt_banned_once_and_validation():
    r = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    assert group_filter(r, ["x", "x"]).banned_prompt_ids == ("x",)
    with pytest.raises(ValueError, match="prompt_ids"):
        group_filter(r, ["x"])
    with pytest.raises(ValueError, match="NaN"):
        group_filter(torch.tensor([[1.0, float("nan")]]), ["x"])


def test_ban_list_update_and_state_round_trip():
    bans = PromptBanList()
    assert bans.update(group_filter(_batch(), IDS)) == 2
    assert bans.update(group_filter(_batch()[:1], ["p0"])) == 0  # already banned
    assert bans.is_banned("p0") and bans.is_banned("p3") and not bans.is_banned("p2")
    assert "p3" in bans and len(bans) == 2
    state = json.loads(json.dumps(bans.state_dict()))  # JSON-serialisable
    assert state == {"banned": ["p0", "p3"]}
    restored = PromptBanList(["stale"])
    restored.load_state_dict(state)
    assert restored.state_dict() == bans.state_dict()
    assert not restored.is_banned("stale")
