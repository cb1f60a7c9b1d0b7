"""Old-policy decay schedules, the in-place soft update, and the evaluation-EMA decay."""

from __future__ import annotations

import pytest
import torch

from edit_rl.objectives import ema_decay, old_policy_decay, soft_update_
from edit_rl.objectives import nft as nft_module


@pytest.mark.parametrize(
    "decay_type, step, expected",
    [
        # type 0: always 0 (old policy = current policy after each epoch)
        (0, 0, 0.0), (0, 100, 0.0), (0, 10**6, 0.0),
        # type 1: min(0.001 step, 0.5)
        (1, 0, 0.0), (1, 1, 0.001), (1, 100, 0.1), (1, 499, 0.499), (1, 500, 0.5),
        (1, 1000, 0.5),
        # type 2: 0 below 75, then min(0.0075 (step - 75), 0.999)
        (2, 0, 0.0), (2, 74, 0.0), (2, 75, 0.0), (2, 76, 0.0075),
        (2, 100, 0.1875),  # 0.0075 * 25
        (2, 208, 0.9975),  # 0.0075 * 133
        (2, 209, 0.999),   # 0.0075 * 134 = 1.005 -> capped
        (2, 10**6, 0.999),
    ],
)
def test_old_policy_decay_schedules(decay_type: int, step: int, expected: float) -> None:
    assert old_policy_decay(step, decay_type) == pytest.approx(expected, abs=1e-12)


def test_old_policy_decay_default_is_type_1() -> None:
    assert old_policy_decay(100) == pytest.approx(0.1)
    assert old_policy_decay(1000) == pytest.approx(0.5)


def test_old_policy_decay_invalid() -> None:
    with pytest.raises(ValueError, match="decay_type"):
        old_policy_decay(10, 3)
    with pytest.raises(ValueError, match="step"):
        old_policy_decay(-1, 1)


def test_nft_module_reexports_the_schedule() -> None:
    assert nft_module.old_policy_decay is old_policy_decay
    assert nft_module.soft_update_ is soft_update_


def test_soft_update_arithmetic() -> None:
    # d = 0.25: 0.25 [1, 2] + 0.75 [3, 6] = [0.25 + 2.25, 0.5 + 4.5] = [2.5, 5.0]
    #           0.25 [[4]] + 0.75 [[0]] = [[1.0]]
    old = [torch.nn.Parameter(torch.tensor([1.0, 2.0])), torch.nn.Parameter(torch.tensor([[4.0]]))]
    new = [torch.tensor([3.0, 6.0]), torch.tensor([[0.0]])]
    soft_update_(old, new, 0.25)
    torch.testing.assert_close(old[0].data, torch.tensor([2.5, 5.0]))
    torch.testing.assert_close(old[1].data, torch.tensor([[1.0]]))
    torch.testing.assert_close(new[0], torch.tensor([3.0, 6.0]))  # source untouched
    assert old[0].grad is None and old[0].requires_grad


def test_soft_update_extremes_and_dtype() -> None:
    old = [torch.tensor([1.0, 2.0])]
    soft_update_(old, [torch.tensor([3.0, 6.0])], 1.0)
    assert torch.equal(old[0], torch.tensor([1.0, 2.0]))  # d = 1: unchanged
    soft_update_(old, [torch.tensor([3.0, 6.0], dtype=torch.float64)], 0.0)
    assert torch.equal(old[0], torch.tensor([3.0, 6.0]))  # d = 0: copy of new
    assert old[0].dtype == torch.float32
    # generators are accepted
    soft_update_((p for p in old), (p for p in [torch.zeros(2)]), 0.5)
    assert torch.equal(old[0], torch.tensor([1.5, 3.0]))


def test_soft_update_errors_leave_params_unchanged() -> None:
    old = [torch.ones(2), torch.ones(3)]
    with pytest.raises(ValueError, match="2 old tensors but 1 new"):
        soft_update_(old, [torch.zeros(2)], 0.5)
    with pytest.raises(ValueError, match="pair 1"):
        soft_update_(old, [torch.zeros(2), torch.zeros(4)], 0.5)
    assert torch.equal(old[0], torch.ones(2))  # pair 0 not updated before the error
    with pytest.raises(ValueError, match="same tensor"):
        soft_update_(old, old, 0.5)
    with pytest.raises(ValueError, match="decay"):
        soft_update_(old, [torch.zeros(2), torch.zeros(3)], 1.5)


@pytest.mark.parametrize(
    "step, expected",
    [(0, 0.1), (1, 2 / 11), (70, 71 / 80), (80, 0.9), (10**6, 0.9)],  # (1+s)/(10+s), cap 0.9
)
def test_ema_decay(step: int, expected: float) -> None:
    assert ema_decay(step) == pytest.approx(expected)
