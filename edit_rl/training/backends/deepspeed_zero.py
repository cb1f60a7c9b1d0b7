"""DeepSpeed ZeRO-2 on the transformer with a client torch AdamW on the LoRA weights.

A client optimizer (not DeepSpeed's fused Adam, whose C++ op compiles for about a minute on
first use) with ``zero_allow_untested_optimizer``. Gradient accumulation is ours
(``managed_gradient_accumulation: false``): every ``backward`` accumulates, ``step`` is the
boundary, whatever the number of micro-batches. DeepSpeed averages gradients over the ranks,
clips them (``gradient_clipping``) and skips the update when a gradient is not finite (its
overflow check, agreed over the ranks). No fp16 / bf16 section: the frozen base keeps its dtype
and the LoRA weights (float32) are the optimizer's. ZeRO-2 keeps whole weights on every rank, so
the LoRA weights are read and written directly. On a CPU, DS_ACCELERATOR must be "cpu" before
deepspeed is imported (set here when unset); DeepSpeed then builds its shared-memory comm op once
per machine (~1 min, cached under ~/.cache/torch_extensions). Checkpoints are DeepSpeed's (the
optimizer partitions one file per rank): resume with the same number of ranks.

ZeRO-3 is refused: on this stack (deepspeed 0.19.8, CPU) it kept only the last backward pass's
gradient when a step accumulates several, so its updates did not match the single-process ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edit_rl.config.schema import LearnerConfig
from edit_rl.editors.lora import trainable_parameters
from edit_rl.training import dist
from edit_rl.training.backends.base import Backend, StepResult

CHECKPOINT_TAG = "learner"


def deepspeed_config(cfg: LearnerConfig) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": 1,  # nominal: micro-batches are ours
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend(Backend):
    def __init__(self, transformer: nn.Module, cfg: LearnerConfig, device: torch.device) -> None:
        if cfg.zero_stage != 2:
            raise NotImplementedError(f"learner.zero_stage={cfg.zero_stage} is not supported (its accumulated "
                                      "updates were wrong on this stack); use zero_stage 2 or backend 'fsdp2'")
        if not dist.is_distributed():
            raise ValueError("backend 'deepspeed' needs torch.distributed initialised first "
                             "(the Ray learner actor does it; use backend 'fsdp2' for a single process)")
        if device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        self.transformer = transformer
        self.params = trainable_parameters(transformer)
        optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                      weight_decay=cfg.weight_decay)
        self.engine, _, _, _ = deepspeed.initialize(model=transformer, optimizer=optimizer,
                                                    config=deepspeed_config(cfg), dist_init_required=False)

    def backward(self, loss: Tensor) -> None:
        self.engine.backward(loss)

    def step(self, discard: bool) -> StepResult:
        if discard:
            # Make every gradient non-finite: DeepSpeed's overflow check then drops them all and
            # leaves weights and optimizer state alone (every rank passes the same `discard`).
            self.engine.backward(sum(p.sum() for p in self.params) * float("nan"))
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return StepResult(float("nan") if norm is None else float(norm), self.engine.was_step_applied())

    def lr(self) -> float:
        return float(self.engine.optimizer.param_groups[0]["lr"])

    def gather(self, param: Tensor) -> Tensor:
        return param.detach().cpu().clone()

    def scatter_(self, param: Tensor, full: Tensor) -> None:
        with torch.no_grad():
            param.copy_(full.to(param.device, param.dtype))

    def save_checkpoint(self, folder: Path, extra: dict[str, Any]) -> None:
        self.engine.save_checkpoint(str(folder), tag=CHECKPOINT_TAG, client_state={"extra": extra},
                                    exclude_frozen_parameters=True)

    def load_checkpoint(self, folder: Path) -> dict[str, Any]:
        path, client_state = self.engine.load_checkpoint(str(folder), tag=CHECKPOINT_TAG, load_module_strict=False)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint {CHECKPOINT_TAG!r} under {folder}")
        return client_state["extra"]
