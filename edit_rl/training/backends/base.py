"""What the learner asks of a parallel backend. Every method is collective: all ranks call it, in
the same order (FSDP2 / ZeRO run collectives inside)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from edit_rl.editors.lora import adapter_parameters, soft_update_old_


@dataclass(frozen=True)
class StepResult:
    """grad_norm: global norm before clipping (inf / nan when the step was dropped for it);
    applied: whether the optimizer updated the weights."""

    grad_norm: float
    applied: bool


class Backend(ABC):
    transformer: nn.Module

    @abstractmethod
    def backward(self, loss: Tensor) -> None:
        """Accumulate d loss / d LoRA into the gradients (the backend averages them over ranks)."""

    @abstractmethod
    def step(self, discard: bool) -> StepResult:
        """Clip the gradients to grad_clip and apply the optimizer, then zero the gradients. With
        ``discard`` (every rank must pass the same value), or a non-finite gradient norm, the
        gradients are dropped and the weights and optimizer state stay as they were."""

    @abstractmethod
    def lr(self) -> float:
        """The optimizer's current learning rate."""

    @abstractmethod
    def gather(self, param: Tensor) -> Tensor:
        """The full value of a (possibly sharded) parameter, a detached CPU copy on every rank."""

    @abstractmethod
    def scatter_(self, param: Tensor, full: Tensor) -> None:
        """Write a full value (the same on every rank) into a (possibly sharded) parameter."""

    def soft_update_old(self, decay: float) -> None:
        """old <- decay old + (1 - decay) default (`soft_update_old_`); shards line up, so local."""
        soft_update_old_(self.transformer, decay)

    def gather_adapter(self, adapter: str) -> dict[str, Tensor]:
        """One adapter's full LoRA tensors keyed as peft's state dict (no adapter name)."""
        return {name: self.gather(p) for name, p in adapter_parameters(self.transformer, adapter)}

    def scatter_adapter_(self, adapter: str, state: dict[str, Tensor]) -> None:
        params = dict(adapter_parameters(self.transformer, adapter))
        if set(params) != set(state):
            missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
            raise ValueError(f"adapter {adapter!r}: state lacks {missing[:3]}, has unknown {extra[:3]}")
        for name, p in params.items():
            self.scatter_(p, state[name])

    @abstractmethod
    def save_checkpoint(self, folder: Path, extra: dict[str, Any]) -> None:
        """Write trainable weights, optimizer state and ``extra`` (small, the same on every rank)."""

    @abstractmethod
    def load_checkpoint(self, folder: Path) -> dict[str, Any]:
        """Restore what `save_checkpoint` wrote; returns its ``extra``."""

