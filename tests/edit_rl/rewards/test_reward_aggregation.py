"""Per-turn scores -> trajectory IF / CC (MT-EditFlow section 4.2, appendix D)."""

import itertools

import pytest
import torch

from edit_rl.rewards import (
    EDIT_R1_LOGIT_SCALE,
    UNIT_SCALE,
    binarize,
    binary_and,
    binary_avg,
    fine_avg,
    normalize_scores,
    trajectory_cc,
    trajectory_if,
)


def test_strategies_on_hand_built_batch():
    # (N, G, T) = (1, 2, 3)
    success = torch.tensor([[[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]])
    # AND: rollout 0 all succeed -> 1; rollout 1 fails turn 2 -> 0
    assert torch.equal(binary_and(success), torch.tensor([[1.0, 0.0]]))
    # avg: (1+1+1)/3 = 1; (1+0+1)/3 = 2/3
    torch.testing.assert_close(binary_avg(success), torch.tensor([[1.0, 2.0 / 3.0]]))

    likert = torch.tensor([[[5.0, 3.0, 1.0], [5.0, 5.0, 5.0]]])
    # (5-1)/4 = 1, (3-1)/4 = .5, (1-1)/4 = 0 -> (1 + .5 + 0)/3 = .5 ; all 5 -> 1
    torch.testing.assert_close(fine_avg(likert), torch.tensor([[0.5, 1.0]]))
    torch.testing.assert_close(trajectory_if(likert, "fine_avg"), torch.tensor([[0.5, 1.0]]))
    assert torch.equal(trajectory_if(success, "binary_and"), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(
        trajectory_if(success, "binary_avg"), torch.tensor([[1.0, 2.0 / 3.0]])
    )


def test_binary_and_sparsity_is_p_to_the_T():
    # all 2^3 success patterns of a 3-turn chain, one per rollout: each turn succeeds with
    # p = 1/2, so P(AND = 1) = p^3 = 1/8 while the binary average has mean p = 1/2
    patterns = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))[None]  # (1, 8, 3)
    assert binary_and(patterns).mean().item() == pytest.approx(1 / 8)
    assert binary_avg(patterns).mean().item() == pytest.approx(1 / 2)
    # fine avg of the same {0,1} values on a (0, 1) scale is the binary average
    torch.testing.assert_close(fine_avg(patterns, UNIT_SCALE), binary_avg(patterns))


def test_fine_avg_other_scales():
    # Edit-R1 normalised logit scores already in [0, 1]: identity, (0.2+0.4+0.9)/3 = 0.5
    unit = torch.tensor([[[0.2, 0.4, 0.9]]])
    torch.testing.assert_close(fine_avg(unit, UNIT_SCALE), torch.tensor([[0.5]]))
    # Edit-R1 expected token value on 0..5: (0/5 + 5/5 + 2.5/5)/3 = (0 + 1 + .5)/3 = .5
    raw = torch.tensor([[[0.0, 5.0, 2.5]]])
    torch.testing.assert_close(fine_avg(raw, EDIT_R1_LOGIT_SCALE), torch.tensor([[0.5]]))
    # fractional Likert allowed: (4.5 - 1)/4 = .875
    torch.testing.assert_close(normalize_scores(torch.tensor([4.5])), torch.tensor([0.875]))


def test_binarize_threshold_is_inclusive():
    scores = torch.tensor([0.3, 0.5, 0.7])
    assert torch.equal(binarize(scores, 0.5), torch.tensor([0.0, 1.0, 1.0]))
    likert = torch.tensor([[[4.0, 3.0, 5.0]]])
    # success iff Likert >= 4 -> [1, 0, 1] -> AND 0, avg 2/3
    s = binarize(likert, 4.0)
    assert binary_and(s).item() == 0.0
    assert binary_avg(s).item() == pytest.approx(2 / 3)


def test_trajectory_cc_is_mean_over_consecutive_pairs():
    # ref->T1 .9, T1->T2 .6, T2->T3 .3 -> (.9+.6+.3)/3 = .6
    cc = torch.tensor([[[0.9, 0.6, 0.3], [1.0, 1.0, 0.7]]])
    torch.testing.assert_close(trajectory_cc(cc), torch.tensor([[0.6, 0.9]]))


def test_validation_errors_name_the_problem():
    nan = torch.tensor([[[5.0, float("nan"), 1.0]]])
    with pytest.raises(ValueError, match="NaN"):
        fine_avg(nan)
    with pytest.raises(ValueError, match="NaN"):
        binary_avg(torch.tensor([[[1.0, float("nan"), 0.0]]]))
    with pytest.raises(ValueError, match="NaN"):
        trajectory_cc(torch.tensor([[[0.5, float("nan"), 0.5]]]))
    with pytest.raises(ValueError, match=r"outside \[1.0, 5.0\]"):
        fine_avg(torch.tensor([[[6.0, 3.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"outside \[1.0, 5.0\]"):
        fine_avg(torch.tensor([[[0.0, 3.0, 1.0]]]))  # a 0-5 score passed with the Likert scale
    with pytest.raises(ValueError, match="binary"):
        binary_and(torch.tensor([[[1.0, 0.5, 1.0]]]))
    with pytest.raises(ValueError, match="outside"):
        trajectory_cc(torch.tensor([[[90.2, 88.0, 91.0]]]))  # percent-scaled CC
    with pytest.raises(ValueError, match="shape"):
        fine_avg(torch.tensor([[5.0, 3.0, 1.0]]))  # missing the group axis
    with pytest.raises(ValueError, match="unknown"):
        trajectory_if(torch.ones(1, 1, 3), "binary_or")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lo < hi"):
        normalize_scores(torch.ones(3), (5.0, 1.0))
