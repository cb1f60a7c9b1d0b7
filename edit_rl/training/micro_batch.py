"""A learner micro-batch: the buffer's `TrainingSample`s with their `TurnSample` payloads, batched.

``keys`` name each sample ("<rollout_id>/<turn>"): the learner derives every random draw of a
sample (NFT noise levels and noise) from its key and the step, so a sample trains the same way
on whichever rank it lands and a resumed run repeats an uninterrupted one. ``group_keys``
("<chain_id>/<rollout step>/<turn>") are the same for every rollout of a group at one turn: with
``objective.nft.shared_group_noise`` the draws come from them instead (`noise_keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import torch
from torch import Tensor

from edit_rl.buffer.training_batch import TrainingSample
from edit_rl.training.turn_sample import TurnBatch, TurnSample, collate_turn_samples


@dataclass(frozen=True)
class MicroBatch:
    """turns: the payloads stacked; advantage, r, weight: (B,) float32 (weight 0: padding)."""

    turns: TurnBatch
    advantage: Tensor
    r: Tensor
    weight: Tensor
    keys: tuple[str, ...]
    group_keys: tuple[str, ...]

    @property
    def batch_size(self) -> int:
        return self.turns.batch_size


def sample_key(sample: TrainingSample) -> str:
    return f"{sample.rollout_id}/{sample.turn}"


def group_key(sample: TrainingSample) -> str:
    return f"{sample.chain_id}/{sample.step}/{sample.turn}"


def noise_keys(mb: MicroBatch, shared_group_noise: bool) -> tuple[str, ...]:
    """The keys the learner seeds each sample's NFT draws from: the group's turn when the group
    shares its noise, else the sample's own."""
    return mb.group_keys if shared_group_noise else mb.keys


def build_micro_batch(samples: Sequence[TrainingSample],
                      payloads: Sequence[TurnSample] | None = None) -> MicroBatch:
    """Batch ``samples``. ``payloads`` are their resolved `TurnSample`s (the Ray wrapper fetches
    the object-store handles); without them each ``sample.payload`` must be a `TurnSample`."""
    if payloads is None:
        payloads = [s.payload for s in samples]
    if len(payloads) != len(samples):
        raise ValueError(f"{len(payloads)} payloads for {len(samples)} samples")
    for s, p in zip(samples, payloads):
        if not isinstance(p, TurnSample):
            raise TypeError(f"sample {sample_key(s)}: payload is a {type(p).__name__}, not a TurnSample")
    return MicroBatch(
        turns=collate_turn_samples(payloads),
        advantage=torch.tensor([s.advantage for s in samples], dtype=torch.float32),
        r=torch.tensor([s.r for s in samples], dtype=torch.float32),
        weight=torch.tensor([s.weight for s in samples], dtype=torch.float32),
        keys=tuple(sample_key(s) for s in samples),
        group_keys=tuple(group_key(s) for s in samples),
    )
