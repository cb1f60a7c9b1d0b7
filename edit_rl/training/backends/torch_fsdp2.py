"""FSDP2 (``torch.distributed.fsdp.fully_shard``) on the transformer, AdamW on the LoRA weights.

With a process group of two or more ranks, every block of the transformer's block lists and then
the root are sharded (FSDP2 averages gradients over the ranks in backward); with one rank (or no
process group) the module is left as it is: sharding over one rank only adds all-gathers and
DTensor dispatch to every block (results/benchmarks.md, ``overhead/learner-fsdp2-1-rank``).
Checkpoints use torch.distributed.checkpoint's full state dicts
(FQN keys, full tensors), so one written by R ranks loads on any number of ranks.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

from edit_rl.config.schema import LearnerConfig
from edit_rl.editors.lora import trainable_parameters
from edit_rl.training import dist
from edit_rl.training.backends.base import Backend, StepResult
from edit_rl.training.checkpoint_file import load_tensor_file

CHECKPOINT_FILE = "learner.pt"


def shard_transformer(transformer: nn.Module, device: torch.device) -> None:
    """fully_shard each child of the root's ModuleLists (FLUX: transformer_blocks,
    single_transformer_blocks), then the root, on a 1-D mesh over all ranks."""
    # diffusers' FLUX blocks return slices (views) of their output; nothing edits them in place, so
    # FSDP2's warning about in-place ops on views does not apply (2 ranks match 1 process to ~1e-8:
    # tests/actors/test_learner_group.py).
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    mesh = init_device_mesh(device.type, (dist.world_size(),))
    for child in transformer.children():
        if isinstance(child, nn.ModuleList):
            for block in child:
                fully_shard(block, mesh=mesh)
    fully_shard(transformer, mesh=mesh)


class TorchBackend(Backend):
    shards_base = True  # False: every rank keeps the whole transformer (ReplicateBackend)

    def __init__(self, transformer: nn.Module, cfg: LearnerConfig, device: torch.device) -> None:
        self.transformer = transformer
        self.cfg = cfg
        self.distributed = dist.is_distributed() and dist.world_size() > 1
        self.sharded = self.shards_base and self.distributed
        if self.sharded:
            shard_transformer(transformer, device)
        self.params = trainable_parameters(transformer)  # after sharding: the DTensor parameters
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]),
                                           weight_decay=cfg.weight_decay)
        self.options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)

    def backward(self, loss: Tensor) -> None:
        loss.backward()

    def step(self, discard: bool) -> StepResult:
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        grad_norm = float(norm)
        applied = not discard and math.isfinite(grad_norm)  # the norm is global: every rank agrees
        if applied:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(grad_norm, applied)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def gather(self, param: Tensor) -> Tensor:
        full = param.full_tensor() if isinstance(param, DTensor) else param
        return full.detach().cpu().clone()

    def scatter_(self, param: Tensor, full: Tensor) -> None:
        with torch.no_grad():
            if isinstance(param, DTensor):
                value = full.to(param.to_local().device, param.dtype)
                param.copy_(distribute_tensor(value, param.device_mesh, param.placements))
            else:
                param.copy_(full.to(param.device, param.dtype))

    # ---- checkpoints -------------------------------------------------------------------------
    def state_dict(self, extra: dict[str, Any]) -> dict[str, Any]:
        """Full trainable weights and optimizer state (FQN keys) plus ``extra``; the tensors are
        complete on rank 0 (other ranks get empty dicts: cpu_offload gathers to rank 0 only)."""
        model, optimizer = get_state_dict(self.transformer, self.optimizer, options=self.options)
        return {"model": model, "optimizer": optimizer, "extra": extra}

    def load_state_dict(self, state: dict[str, Any]) -> dict[str, Any]:
        """Restore `state_dict` output (written by any number of ranks); every rank passes it."""
        options = StateDictOptions(full_state_dict=True, ignore_frozen_params=True, strict=False)
        set_state_dict(self.transformer, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"], options=options)
        return state["extra"]

    def save_checkpoint(self, folder: Path, extra: dict[str, Any]) -> None:
        state = self.state_dict(extra)
        if dist.rank() == 0:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{CHECKPOINT_FILE}.tmp"
            torch.save(state, tmp)
            os.replace(tmp, folder / CHECKPOINT_FILE)
        if self.distributed:
            torch.distributed.barrier()

    def load_checkpoint(self, folder: Path) -> dict[str, Any]:
        state = load_tensor_file(folder / CHECKPOINT_FILE)
        return self.load_state_dict(state)
