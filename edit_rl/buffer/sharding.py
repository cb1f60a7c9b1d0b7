"""Splitting a step's training samples over the learner ranks, in micro-batches.

FSDP (and ZeRO-3) run collectives inside every forward and backward, so every rank must run
the SAME number of micro-batches or the ranks deadlock. :func:`shard_samples` therefore

* deals the samples round-robin (sample i -> rank i mod R): deterministic, and the ranks' real
  sample counts differ by at most one;
* gives every rank M = ceil(ceil(n / R) / micro_batch_size) micro-batches of exactly
  ``micro_batch_size`` samples (uniform shapes), filling the gaps with padding: copies of one of
  the rank's own samples (so its payload is at hand and shapes match) with ``weight = 0``.

The loss must use ``weight`` as its per-sample mask, so padding contributes nothing:

* exact equal weighting of the n real samples: each micro-batch adds
  sum(weight * loss_i) * R / n to the loss before backward (FSDP averages gradients over the R
  ranks), so the step's gradient is that of mean over the n real samples;
* Edit-R1 style, ``nft_loss(..., mask=weights)``: sum(weight * loss_i) / sum(weight) per
  micro-batch; a micro-batch that is all padding gives an exact, graph-attached zero (the
  collectives still run), but real samples sharing a micro-batch with padding weigh a little more.

With no samples every rank gets zero micro-batches (the learner skips the optimizer step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from edit_rl.buffer.training_batch import TrainingSample

SampleMicroBatch = tuple[TrainingSample, ...]


@dataclass(frozen=True)
class ShardedSamples:
    """``ranks[r][m]`` is micro-batch m of rank r; every rank has ``num_micro_batches`` of them,
    each of ``micro_batch_size`` samples. ``num_real`` input samples (weight as given) plus
    ``num_padding`` weight-0 copies."""

    ranks: tuple[tuple[SampleMicroBatch, ...], ...]
    num_micro_batches: int
    micro_batch_size: int
    num_real: int
    num_padding: int


def shard_samples(samples: Sequence[TrainingSample], num_ranks: int, micro_batch_size: int) -> ShardedSamples:
    """Deal ``samples`` over ``num_ranks`` ranks in equal numbers of full micro-batches,
    padding with weight-0 copies (see the module docstring)."""
    if num_ranks < 1 or micro_batch_size < 1:
        raise ValueError(f"num_ranks and micro_batch_size must be >= 1, got {num_ranks}, {micro_batch_size}")
    n = len(samples)
    per_rank = math.ceil(n / num_ranks)
    num_micro = math.ceil(per_rank / micro_batch_size)
    slots = num_micro * micro_batch_size
    ranks = []
    for rank in range(num_ranks):
        own = list(samples[rank::num_ranks])
        donors = own or ([samples[rank % n]] if n else [])
        padded = own + [replace(donors[i % len(donors)], weight=0.0) for i in range(slots - len(own))]
        ranks.append(tuple(tuple(padded[m * micro_batch_size:(m + 1) * micro_batch_size])
                           for m in range(num_micro)))
    return ShardedSamples(tuple(ranks), num_micro, micro_batch_size, n, num_ranks * slots - n)
