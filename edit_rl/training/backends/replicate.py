"""Replicate the frozen base on every rank, all-reduce only the LoRA gradients (the data-parallel
layout Edit-R1 and Flow-GRPO train FLUX with, there through DDP).

Each rank holds the whole transformer; no weight moves between ranks in forward or backward. Before
each optimizer step the ranks average their accumulated LoRA gradients in one flat all-reduce (so a
step's traffic is the LoRA's size, not the base's), then clip and step AdamW identically, so the
replicas stay equal. Checkpoints, gather and scatter are the unsharded case of `TorchBackend`.
Choose it (``learner.strategy: replicate``) when the frozen base fits each GPU beside the
activations; sharding (``shard``) remains for models that do not.
"""

from __future__ import annotations

import torch

from edit_rl.training import dist
from edit_rl.training.backends.base import StepResult
from edit_rl.training.backends.torch_fsdp2 import TorchBackend


class ReplicateBackend(TorchBackend):
    shards_base = False

    def average_gradients(self) -> None:
        """grad <- (1 / R) sum over the R ranks of grad, for every LoRA parameter, in one flat
        buffer (a parameter without a gradient on this rank counts as zeros)."""
        if not (dist.is_distributed() and dist.world_size() > 1):
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
        flat /= dist.world_size()
        offset = 0
        for p, g in zip(self.params, grads):
            p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
            offset += g.numel()

    def step(self, discard: bool) -> StepResult:
        self.average_gradients()
        return super().step(discard)
