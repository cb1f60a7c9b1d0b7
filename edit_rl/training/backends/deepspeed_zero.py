"""DeepSpeed ZeRO-2 or ZeRO-3 on the transformer with a client torch AdamW on the LoRA weights.

A client optimizer (not DeepSpeed's fused Adam, whose C++ op compiles for about a minute on
first use) with ``zero_allow_untested_optimizer``. Gradient accumulation is ours
(``managed_gradient_accumulation: false``): every ``backward`` accumulates, ``step`` is the
boundary, whatever the number of micro-batches. DeepSpeed averages gradients over the ranks,
clips them (``gradient_clipping``) and skips the update when a gradient is not finite (its
overflow check, agreed over the ranks; a step every rank discards drops the accumulated
gradients the same way). No fp16 / bf16 section: the frozen base keeps its dtype
and the LoRA weights (float32) are the optimizer's. On a CPU, DS_ACCELERATOR must be "cpu" before
deepspeed is imported (set here when unset); DeepSpeed then builds its shared-memory comm op once
per machine (~1 min, cached under ~/.cache/torch_extensions). Checkpoints are DeepSpeed's (the
optimizer partitions, and with ZeRO-3 the module states, one file per rank): resume with the same
number of ranks.

The editor calls the transformer itself, not ``engine(...)``, so `DeepSpeedEngine.forward` never
runs. That forward is where DeepSpeed opens a new micro-step (``optimizer.clear_backward_seen_flag``:
ZeRO-3 then counts ``micro_step_id`` up, and its gradient hooks copy the first backward's
reduced gradient into their partition buffers and add the later ones). Without it every backward
of a ZeRO-3 step was the "first" and overwrote the partition: only the last micro-batch's
gradient survived. `backward` therefore opens the micro-step itself (both stages, as DeepSpeed's
own forward would).

ZeRO-3 partitions every parameter of the transformer, the frozen base included (the memory it
saves over ZeRO-2 is the base's; the LoRA weights are small), except those of at most
``zero3_persistence_threshold`` elements, which stay whole on every rank (DeepSpeed's
``stage3_param_persistence_threshold``; with its default of 1e5, biases, norms and LoRA matrices
up to 32 x 3072 stay whole, the large matrices are partitioned). The "old" and "default" adapters
are partitioned alike (same shapes), but a partitioned parameter's ``data`` is an empty
placeholder outside forward / backward, so reading, writing and the soft update of the "old"
adapter go through `deepspeed.zero.GatheredParameters` (one collective per adapter; a no-op on
ZeRO-2's whole parameters); a write also sets the optimizer's float32 copy of a trained one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from edit_rl.config.schema import LearnerConfig
from edit_rl.editors.lora import (DEFAULT_ADAPTER, OLD_ADAPTER, adapter_parameters, soft_update_old_,
                                  trainable_parameters)
from edit_rl.training import dist
from edit_rl.training.backends.base import Backend, StepResult
from edit_rl.training.checkpoint_file import load_tensor_file

CHECKPOINT_TAG = "learner"


def deepspeed_config(cfg: LearnerConfig) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage == 3:
        zero["stage3_param_persistence_threshold"] = cfg.zero3_persistence_threshold
    return {
        "train_micro_batch_size_per_gpu": 1,  # nominal: micro-batches are ours
        "gradient_accumulation_steps": 1,
        "managed_gradient_accumulation": False,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend(Backend):
    def __init__(self, transformer: nn.Module, cfg: LearnerConfig, device: torch.device) -> None:
        if cfg.zero_stage not in (2, 3):
            raise ValueError(f"learner.zero_stage must be 2 or 3, got {cfg.zero_stage}")
        if not dist.is_distributed():
            raise ValueError("backend 'deepspeed' needs torch.distributed initialised first "
                             "(the Ray learner actor does it; use backend 'fsdp2' for a single process)")
        if device.type == "cpu":
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        import deepspeed

        self._gathered = deepspeed.zero.GatheredParameters
        self._set_fp32 = deepspeed.utils.safe_set_full_fp32_param
        self.zero3 = cfg.zero_stage == 3
        self.transformer = transformer
        self.params = trainable_parameters(transformer)
        self._trained = {id(p) for p in self.params}
        optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                      weight_decay=cfg.weight_decay)
        self.engine, _, _, _ = deepspeed.initialize(model=transformer, optimizer=optimizer,
                                                    config=deepspeed_config(cfg), dist_init_required=False)

    def backward(self, loss: Tensor) -> None:
        # What engine.forward() does first (see the module docstring): a new micro-step, whose
        # gradient ZeRO adds to the ones accumulated since the last step.
        self.engine.optimizer.clear_backward_seen_flag()
        self.engine.backward(loss)

    def step(self, discard: bool) -> StepResult:
        # Every rank passes the same `discard`: all skip the update, or none.
        if discard and self.zero3:
            # Outside forward / backward the partitioned LoRA weights are empty placeholders, so no
            # NaN gradient can be made from them: drop the accumulated gradient partitions as
            # DeepSpeed's overflow path does (its zero_grad: the next backward overwrites them).
            self.engine.optimizer.zero_grad(set_to_none=True)
            return StepResult(float("nan"), False)
        if discard:
            # Make every gradient non-finite: DeepSpeed's overflow check then drops them all and
            # leaves weights and optimizer state alone.
            self.backward(sum(p.sum() for p in self.params) * float("nan"))
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return StepResult(float("nan") if norm is None else float(norm), self.engine.was_step_applied())

    def lr(self) -> float:
        return float(self.engine.optimizer.param_groups[0]["lr"])

    def gather(self, param: Tensor) -> Tensor:
        with self._gathered(param):
            return param.detach().cpu().clone()

    def gather_adapter(self, adapter: str) -> dict[str, Tensor]:
        params = adapter_parameters(self.transformer, adapter)
        with self._gathered([p for _, p in params]):  # one all-gather for the adapter, not one per tensor
            return {name: p.detach().cpu().clone() for name, p in params}

    def scatter_(self, param: Tensor, full: Tensor) -> None:
        with self._gathered(param, modifier_rank=0), torch.no_grad():  # every rank writes the same value
            param.copy_(full.to(param.device, param.dtype))
        if id(param) in self._trained:  # the optimizer steps from its own float32 copy
            self._set_fp32(param, full.to(param.device, torch.float32))

    def soft_update_old(self, decay: float) -> None:
        """old <- decay old + (1 - decay) default on gathered adapters (ZeRO-3: partitioned)."""
        old = [p for _, p in adapter_parameters(self.transformer, OLD_ADAPTER)]
        new = [p for _, p in adapter_parameters(self.transformer, DEFAULT_ADAPTER)]
        with self._gathered(new), self._gathered(old, modifier_rank=0):  # every rank computes the same
            soft_update_old_(self.transformer, decay)

    def save_checkpoint(self, folder: Path, extra: dict[str, Any]) -> None:
        self.engine.save_checkpoint(str(folder), tag=CHECKPOINT_TAG, client_state={"extra": extra},
                                    exclude_frozen_parameters=True)

    def load_checkpoint(self, folder: Path) -> dict[str, Any]:
        # DeepSpeed's loader unpickles anything (weights_only=False): read its files as tensors,
        # plain data and the few plain records its ZeRO optimizer state holds, nothing else.
        self.engine.checkpoint_engine.load = _load_deepspeed_file
        path, client_state = self.engine.load_checkpoint(str(folder), tag=CHECKPOINT_TAG, load_module_strict=False)
        if path is None:
            raise FileNotFoundError(f"no DeepSpeed checkpoint {CHECKPOINT_TAG!r} under {folder}")
        return client_state["extra"]


def _load_deepspeed_file(path: str, map_location=None) -> Any:
    """One DeepSpeed checkpoint file, loaded with ``weights_only=True`` admitting besides tensors and
    plain data only the record types DeepSpeed's ZeRO optimizer state is made of."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    with torch.serialization.safe_globals([LossScaler, ZeroStageEnum, fragment_address]):
        return load_tensor_file(path, map_location="cpu" if map_location is None else map_location)
