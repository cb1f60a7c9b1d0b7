"""torch.distributed helpers that also work without a process group (one process = world size 1)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum over ranks, as a copy (``values`` on the learner's device: CPU for gloo, GPU for nccl)."""
    out = values.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is True on any rank (so all ranks take the same branch)."""
    t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float32, device=device)
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
