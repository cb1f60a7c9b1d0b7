"""How a learner rank shards the transformer and steps the optimizer: FSDP2 (or a single process)
or DeepSpeed ZeRO-2/3. `make_backend` picks one from LearnerConfig.backend."""

from __future__ import annotations

import torch
from torch import nn

from edit_rl.config.schema import LearnerConfig
from edit_rl.training.backends.base import Backend, StepResult
from edit_rl.training.backends.torch_fsdp2 import TorchBackend


def make_backend(transformer: nn.Module, cfg: LearnerConfig, device: torch.device) -> Backend:
    """FSDP2 (no sharding without a process group) or DeepSpeed, on the LoRA-equipped transformer."""
    if cfg.backend == "fsdp2":
        return TorchBackend(transformer, cfg, device)
    from edit_rl.training.backends.deepspeed_zero import DeepSpeedBackend  # imports deepspeed

    return DeepSpeedBackend(transformer, cfg, device)


__all__ = ["Backend", "StepResult", "make_backend"]
