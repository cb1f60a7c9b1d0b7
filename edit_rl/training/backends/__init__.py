"""How a learner rank shards the transformer and steps the optimizer: FSDP2 (or a single process),
the base replicated on every rank with only the LoRA gradients all-reduced, or DeepSpeed
ZeRO-2/3. `make_backend` picks one from LearnerConfig.backend and .strategy."""

from __future__ import annotations

import torch
from torch import nn

from edit_rl.config.schema import LearnerConfig
from edit_rl.training.backends.base import Backend, StepResult
from edit_rl.training.backends.replicate import ReplicateBackend
from edit_rl.training.backends.torch_fsdp2 import TorchBackend


def make_backend(transformer: nn.Module, cfg: LearnerConfig, device: torch.device) -> Backend:
    """FSDP2 (no sharding without a process group), the replicated base, or DeepSpeed, on the
    LoRA-equipped transformer."""
    if cfg.backend == "fsdp2":
        if cfg.strategy == "replicate":
            return ReplicateBackend(transformer, cfg, device)
        return TorchBackend(transformer, cfg, device)
    from edit_rl.training.backends.deepspeed_zero import DeepSpeedBackend  # imports deepspeed

    return DeepSpeedBackend(transformer, cfg, device)


__all__ = ["Backend", "StepResult", "make_backend"]
