"""One learner rank: the editor with LoRA ("default" trained, "old" for DiffusionNFT), sharded by a
backend (FSDP2 by default, DeepSpeed ZeRO-2/3 by config), trained with DiffusionNFT or Flow-GRPO.

A step (`Learner.train_step`) takes this rank's micro-batches (`edit_rl.buffer.shard_samples`
gives every rank the same number), splits them into ``learner.optimizer_steps_per_step``
consecutive groups and, per group: counts the real samples n over all ranks (weight > 0; GRPO
also drops zero-advantage samples, as flow_grpo), runs forward and backward on every
micro-batch with the loss scaled by R / n (each real sample weighs 1 / n after the backend's
average over the R ranks), then clips and steps AdamW. A non-finite loss on any rank (agreed
through an all-reduce, so every rank takes the same branch) or a non-finite gradient norm drops
the gradients instead: weights and optimizer state stay as they were and the step is counted.
After the step's updates, DiffusionNFT moves the old adapter: old <- d old + (1 - d) theta with
d = old_policy_decay(step, decay_type) (not when no update was applied). With ``learner.ema``, every
applied update s (counted from 1 over the run) also moves the evaluation EMA of theta,
ema <- e ema + (1 - e) theta with e = ema_decay(s, learner.ema_max_decay) (the reference's
``EMAModuleWrapper.step`` after each optimizer step; ema starts at the initial LoRA), and
`save_lora` writes the EMA: what checkpoints hand to evaluation, as the reference evaluates and
saves its EMA.

Randomness: NFT noise levels and noise come from per-sample generators seeded by (trainer seed,
step, sample key; the group's key with ``objective.nft.shared_group_noise``), and the global torch
RNG (LoRA dropout) is seeded by (seed, step, rank) for the step's duration; a step is a function of
the weights, the step number and the data, so a resumed run repeats an uninterrupted one and a
sample trains identically on any rank.
Every public method is collective under torch.distributed: call it on all ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from edit_rl.config.schema import Config
from edit_rl.editors.base import Editor
from edit_rl.editors.load import load_editor
from edit_rl.editors.lora import DEFAULT_ADAPTER, OLD_ADAPTER, add_lora
from edit_rl.editors.lora_targets import lora_config_for
from edit_rl.objectives.old_policy import ema_decay, old_policy_decay, soft_update_
from edit_rl.training import dist
from edit_rl.training.backends import Backend, StepResult, make_backend
from edit_rl.training.backends.torch_fsdp2 import TorchBackend
from edit_rl.training.losses import GRPO_METRICS, NFT_METRICS, grpo_micro_batch, nft_micro_batch
from edit_rl.training.micro_batch import MicroBatch, noise_keys
from edit_rl.training.seeding import derived_seed, sample_generators

STATE_VERSION = 1


class Learner:
    """One rank. ``cfg`` is the whole run config (editor, lora, sampler, objective, learner,
    trainer.seed); torch.distributed, when used, is initialised by the caller beforehand."""

    def __init__(self, cfg: Config, device: torch.device | str = "cpu") -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.editor: Editor = load_editor(cfg.editor, self.device, transformer_only=True)  # never encodes or decodes
        self.nft = cfg.objective.name == "nft"
        with torch.random.fork_rng(devices=[]):  # the same LoRA init on every rank and every run
            torch.manual_seed(derived_seed(cfg.trainer.seed, "lora-init"))
            add_lora(self.editor.transformer, lora_config_for(self.editor, cfg.lora), with_old=self.nft)
        self.backend: Backend = make_backend(self.editor.transformer, cfg.learner, self.device)
        self.metric_names = NFT_METRICS if self.nft else GRPO_METRICS
        self.last_step = -1  # the last step trained (-1: none)
        self.optimizer_steps = 0  # updates applied since the run began
        self.skipped_nonfinite = 0  # optimizer steps dropped for a non-finite loss or gradient
        # The evaluation EMA of "default": full CPU tensors, the same on every rank (None: off).
        self.ema: dict[str, Tensor] | None = None
        if cfg.learner.ema:  # float32 whatever the LoRA's dtype: small (1 - e) updates must not round away
            self.ema = {name: t.float() for name, t in self.lora_state().items()}

    # ---- training ----------------------------------------------------------------------------
    def train_step(self, micro_batches: Sequence[MicroBatch], step: int) -> dict[str, float]:
        """Train on this rank's micro-batches; returns metrics aggregated over all ranks (loss
        terms and diagnostics: means over the real samples; grad_norm: of the last update)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        groups = _split(list(micro_batches), self.cfg.learner.optimizer_steps_per_step)
        sums = torch.zeros(len(self.metric_names), dtype=torch.float64)
        num_samples, applied, skipped, grad_norm = 0.0, 0, 0, float("nan")
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(derived_seed(self.cfg.trainer.seed, step, f"rank{self.rank}"))
            for group in groups:
                result = self._optimizer_step(group, step)
                if result is None:
                    continue
                group_sums, n, step_result = result
                sums += group_sums
                num_samples += n
                grad_norm = step_result.grad_norm
                applied += int(step_result.applied)
                skipped += int(not step_result.applied)
                if step_result.applied:
                    self.optimizer_steps += 1
                    self._update_ema()
        self.skipped_nonfinite += skipped
        metrics = {name: float(v) / num_samples if num_samples > 0 else float("nan")
                   for name, v in zip(self.metric_names, sums.tolist())}
        metrics.update(grad_norm=grad_norm, lr=self.backend.lr(), num_samples=num_samples,
                       num_micro_batches=float(len(micro_batches)), optimizer_steps=float(applied),
                       skipped_nonfinite=float(skipped), total_skipped_nonfinite=float(self.skipped_nonfinite))
        if self.nft:
            decay = old_policy_decay(step, self.cfg.objective.nft.decay_type)
            if applied:
                self.backend.soft_update_old(decay)
            metrics["old_decay"] = decay
        self.last_step = step
        return metrics

    def _update_ema(self) -> None:
        """ema <- e ema + (1 - e) theta, e = ema_decay(updates so far) (collective: gathers theta)."""
        if self.ema is None:
            return
        theta = self.lora_state()
        names = sorted(self.ema)
        soft_update_([self.ema[n] for n in names], [theta[n] for n in names],
                     ema_decay(self.optimizer_steps, self.cfg.learner.ema_max_decay))

    def _optimizer_step(self, group: list[MicroBatch], step: int) -> tuple[Tensor, float, StepResult] | None:
        """One update over ``group``; None when no rank has a real sample (nothing runs)."""
        weights = [self._sample_weights(mb) for mb in group]
        local_n = sum(float(w.sum()) for w in weights)
        n = float(dist.all_reduce_sum(torch.tensor([local_n], dtype=torch.float64, device=self._comm_device))[0])
        if n <= 0:
            return None
        loss_scale = self.world_size / n
        sums = torch.zeros(len(self.metric_names), dtype=torch.float64)
        finite = True
        for mb, w in zip(group, weights):
            mb_sums, mb_finite = self._micro_batch(mb, w, step, loss_scale)
            sums += mb_sums
            finite = finite and mb_finite
        discard = dist.any_rank(not finite, self._comm_device)
        result = self.backend.step(discard)
        total = dist.all_reduce_sum(sums.to(self._comm_device)).cpu()
        return total, n, result

    def _sample_weights(self, mb: MicroBatch) -> Tensor:
        """The loss mask: the sample weight (0 for padding); GRPO also drops zero advantages."""
        if self.nft:
            return mb.weight
        return mb.weight * (mb.advantage != 0).to(mb.weight.dtype)

    def _micro_batch(self, mb: MicroBatch, weight: Tensor, step: int, loss_scale: float) -> tuple[Tensor, bool]:
        if self.nft:
            nft = self.cfg.objective.nft
            generators = sample_generators(self.cfg.trainer.seed, step, noise_keys(mb, nft.shared_group_noise))
            return nft_micro_batch(self.editor, mb.turns, mb.r, weight, generators, nft,
                                   loss_scale, self.backend.backward)
        return grpo_micro_batch(self.editor, mb.turns, mb.advantage, weight, self.cfg.objective.grpo,
                                self.cfg.sampler, loss_scale, self.backend.backward)

    @property
    def _comm_device(self) -> torch.device:
        """Where small tensors for collectives live: the learner's device (CPU: gloo, GPU: nccl)."""
        return self.device

    # ---- weights -----------------------------------------------------------------------------
    def lora_state(self, adapter: str = DEFAULT_ADAPTER) -> dict[str, Tensor]:
        """One adapter's full LoRA tensors (peft keys, CPU), on every rank, for weight sync to
        rollout workers (`edit_rl.editors.lora.load_adapter_state_dict_`): "default" (theta), or
        "old" (DiffusionNFT samples its rollouts with the old policy)."""
        if adapter == OLD_ADAPTER and not self.nft:
            raise ValueError("only DiffusionNFT keeps an 'old' adapter")
        return self.backend.gather_adapter(adapter)

    def save_lora(self, folder: str | Path) -> None:
        """The "default" adapter (its evaluation EMA with ``learner.ema``) in diffusers' LoRA format
        (``pytorch_lora_weights.safetensors`` with rank / alpha metadata;
        `edit_rl.editors.lora.save_lora_weights` for a gathered state), written by rank 0."""
        state = self.lora_state() if self.ema is None else self.ema
        if self.rank == 0:
            metadata = self.editor.transformer.peft_config[DEFAULT_ADAPTER].to_dict()
            self.editor.pipeline_class.save_lora_weights(str(folder), transformer_lora_layers=state,
                                                         transformer_lora_adapter_metadata=metadata)

    # ---- checkpoints -------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"version": STATE_VERSION, "objective": self.cfg.objective.name,
                                 "last_step": self.last_step, "optimizer_steps": self.optimizer_steps,
                                 "skipped_nonfinite": self.skipped_nonfinite}
        if self.nft:
            extra["old_adapter"] = self.backend.gather_adapter(OLD_ADAPTER)
        if self.ema is not None:
            extra["ema"] = self.ema
        return extra

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        if extra.get("version") != STATE_VERSION or extra.get("objective") != self.cfg.objective.name:
            raise ValueError(f"checkpoint is version {extra.get('version')!r} for objective "
                             f"{extra.get('objective')!r}; this learner needs version {STATE_VERSION} "
                             f"for {self.cfg.objective.name!r}")
        if self.nft:
            self.backend.scatter_adapter_(OLD_ADAPTER, extra["old_adapter"])
        if self.ema is not None:
            if "ema" not in extra:
                raise ValueError("learner.ema is on but the checkpoint has no EMA (it was saved with "
                                 "learner.ema off); resume with learner.ema=false")
            if set(extra["ema"]) != set(self.ema):
                raise ValueError("the checkpoint's EMA does not have this LoRA's tensors")
            self.ema = {n: t.detach().cpu().float().clone() for n, t in extra["ema"].items()}
        self.last_step = int(extra["last_step"])
        self.optimizer_steps = int(extra["optimizer_steps"])
        self.skipped_nonfinite = int(extra["skipped_nonfinite"])

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume exactly: "default" LoRA and AdamW state (full tensors, FQN keys,
        complete on rank 0), the "old" adapter, step counters. Independent of the world size.
        FSDP2 / single process only (DeepSpeed: `save_checkpoint`)."""
        if not isinstance(self.backend, TorchBackend):
            raise NotImplementedError("state_dict() needs backend 'fsdp2'; with DeepSpeed use save_checkpoint()")
        return self.backend.state_dict(self._extra_state())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` output (from any number of ranks); every rank passes the full state."""
        if not isinstance(self.backend, TorchBackend):
            raise NotImplementedError("load_state_dict() needs backend 'fsdp2'; with DeepSpeed use load_checkpoint()")
        self._load_extra_state(self.backend.load_state_dict(state))

    def save_checkpoint(self, folder: str | Path) -> None:
        """Write the resume state under ``folder`` (FSDP2: one world-size independent file written
        by rank 0; DeepSpeed: its per-rank checkpoint, resume with the same number of ranks)."""
        self.backend.save_checkpoint(Path(folder), self._extra_state())

    def load_checkpoint(self, folder: str | Path) -> None:
        self._load_extra_state(self.backend.load_checkpoint(Path(folder)))


def _split(micro_batches: list[MicroBatch], parts: int) -> list[list[MicroBatch]]:
    """``parts`` consecutive groups of as equal size as possible (the same on every rank)."""
    m = len(micro_batches)
    return [micro_batches[i * m // parts:(i + 1) * m // parts] for i in range(parts)]
