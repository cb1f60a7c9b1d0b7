"""The per-(trajectory, turn) payload a rollout worker puts in the object store, and its batching.

A `TurnSample` is everything the learner needs to train on one turn of one trajectory:

* DiffusionNFT: the turn's final latent x0, its own condition (that turn's instruction and
  reference image, MT-EditFlow section 4.5) and the rollout's sigma grid (the NFT noise levels);
* Flow-GRPO: additionally the recorded SDE steps: x_j and x_{j+1} of every SDE step j (only
  those: Euler steps of a windowed rollout carry no log-probability), their log-probabilities
  under the rollout policy, and the step indices j into the grid.

Tensors are compact copies (never views of the rollout's batch: pickling a view would ship the
whole batch's storage). `collate_turn_samples` stacks samples into a `TurnBatch`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from edit_rl.editors.base import EditCondition
from edit_rl.editors.rollout import MultiTurnRollout, TurnRollout


@dataclass(frozen=True)
class TurnSample:
    """One turn of one trajectory. x0 (...): final latent (no batch dim). condition: batch of 1.
    sigmas (n + 1,) float64. For SDE rollouts (else None): latents / next_latents (K, ...): x_j and
    x_{j+1} of the K SDE steps; log_probs (K,) float32; sde_steps (K,) long: the step indices j."""

    x0: Tensor
    condition: EditCondition
    sigmas: Tensor
    latents: Tensor | None = None
    next_latents: Tensor | None = None
    log_probs: Tensor | None = None
    sde_steps: Tensor | None = None

    @property
    def has_sde_steps(self) -> bool:
        return self.log_probs is not None


@dataclass(frozen=True)
class TurnBatch:
    """B turn samples stacked: x0 (B, ...), condition (B rows), sigmas (n + 1,) shared; for SDE
    rollouts latents / next_latents (B, K, ...), log_probs (B, K), sde_steps (K,) shared."""

    x0: Tensor
    condition: EditCondition
    sigmas: Tensor
    latents: Tensor | None = None
    next_latents: Tensor | None = None
    log_probs: Tensor | None = None
    sde_steps: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.x0.shape[0]


def _compact(t: Tensor) -> Tensor:
    return t.detach().contiguous().clone()


def _condition_row(condition: EditCondition, row: int) -> EditCondition:
    selected = condition.select([row])
    return dataclasses.replace(selected, **{f.name: _compact(getattr(selected, f.name))
                                            for f in dataclasses.fields(selected)})


def _turn_sample(turn: TurnRollout, row: int) -> TurnSample:
    if turn.log_probs is None:
        return TurnSample(_compact(turn.x0[row]), _condition_row(turn.condition, row), _compact(turn.sigmas))
    assert turn.latents is not None and turn.next_latents is not None and turn.sde_steps is not None
    steps = turn.sde_steps
    return TurnSample(
        x0=_compact(turn.x0[row]),
        condition=_condition_row(turn.condition, row),
        sigmas=_compact(turn.sigmas),
        latents=_compact(turn.latents[row, steps]),
        next_latents=_compact(turn.next_latents[row, steps]),
        log_probs=_compact(turn.log_probs[row]),
        sde_steps=_compact(steps),
    )


def split_rollout(rollout: MultiTurnRollout) -> list[list[TurnSample]]:
    """``out[b][k]``: turn k of trajectory (row) b, for b in [0, C * G) (row c * G + g: chain c, sample g)."""
    batch = rollout.input_images.shape[0]
    return [[_turn_sample(turn, b) for turn in rollout.turns] for b in range(batch)]


def _same(values: Sequence[Tensor], name: str) -> Tensor:
    first = values[0]
    if not all(v.shape == first.shape and torch.equal(v, first) for v in values[1:]):
        raise ValueError(f"cannot batch turn samples whose {name} differ")
    return first


def collate_turn_samples(samples: Sequence[TurnSample]) -> TurnBatch:
    """Stack samples (same sigma grid; all with or all without SDE steps, the same steps)."""
    if not samples:
        raise ValueError("cannot collate an empty list of turn samples")
    sigmas = _same([s.sigmas for s in samples], "sigma grids")
    condition = type(samples[0].condition).cat([s.condition for s in samples])
    x0 = torch.stack([s.x0 for s in samples])
    with_sde = {s.has_sde_steps for s in samples}
    if len(with_sde) != 1:
        raise ValueError("cannot batch turn samples with and without recorded SDE steps")
    if not with_sde.pop():
        return TurnBatch(x0, condition, sigmas)
    return TurnBatch(
        x0=x0, condition=condition, sigmas=sigmas,
        latents=torch.stack([s.latents for s in samples]),  # type: ignore[misc]
        next_latents=torch.stack([s.next_latents for s in samples]),  # type: ignore[misc]
        log_probs=torch.stack([s.log_probs for s in samples]),  # type: ignore[misc]
        sde_steps=_same([s.sde_steps for s in samples], "SDE step indices"),  # type: ignore[misc]
    )
