"""Memory of each role on its GPU: weights as the role places them, LoRA, gradients, optimizer
state, activations and the load peak, and whether that fits the card.

Roles: a rollout worker (the whole editor, replicated, sampling without grad), a learner rank (the
transformer only, FSDP2 / ZeRO-3 shard or ZeRO-2 replica, LoRA trained with AdamW), a judge
replica (vLLM: weights plus the KV cache it reserves) and a consistency (CC) replica.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from edit_rl.config.schema import Config
from edit_rl.planning.architectures import (CONSISTENCY_MODELS, EDITOR_COMPONENTS, JUDGE_MODELS, TRANSFORMER_OF,
                                            build_meta, largest_block_parameters, lora_parameter_count,
                                            parameter_count)
from edit_rl.planning.cards import Card, usable_bytes
from edit_rl.planning.component_costs import vae_costs
from edit_rl.planning.transformer_costs import transformer_costs

FP32 = 4
VLLM_GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default share of the GPU it claims
VLLM_PROFILE_BYTES = 2 * 2 ** 30  # vLLM's activation profile and CUDA graphs, a stated allowance
CC_ACTIVATION_PER_IMAGE = 160 * 2 ** 20  # Grounding DINO + DINOv3 at 512 px, fp32; stated allowance (not traced:
# Grounding DINO's box selection is data dependent, so it cannot run on fake tensors)


def dtype_bytes(name: str) -> int:
    return torch.finfo(getattr(torch, name)).bits // 8


@dataclass(frozen=True)
class RoleMemory:
    """Bytes one replica / rank of a role holds at its peak, and what it may use."""

    role: str
    placement: str  # how the weights are placed: shard, replica, which components
    weights: int
    lora: int
    gradients: int
    optimizer: int
    activations: int
    load_peak: int
    gpu_fraction: float
    usable: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def steady(self) -> int:
        return self.weights + self.lora + self.gradients + self.optimizer + self.activations

    @property
    def peak(self) -> int:
        return max(self.steady, self.load_peak)

    @property
    def fits(self) -> bool:
        return self.gpu_fraction == 0 or self.peak <= self.usable


def lora_params(cfg: Config) -> int:
    return lora_parameter_count(TRANSFORMER_OF[cfg.editor.family], cfg.lora.rank, tuple(cfg.lora.target_modules))


def rollout_rows(cfg: Config) -> int:
    """Rows a rollout worker samples at once: all rollouts of its chains (`rollout_chains`)."""
    return cfg.rollout.chains_per_request * cfg.rollout.group_size


def rollout_worker_memory(cfg: Config, card: Card) -> RoleMemory:
    """The whole editor replicated in its dtype, LoRA default + old adapters in fp32, and the larger of
    the transformer's no-grad forward and the VAE's encode / decode over all rows."""
    e = cfg.editor
    parts = EDITOR_COMPONENTS[e.family]
    weights = sum(parameter_count(p) for p in parts) * dtype_bytes(e.dtype)
    rows = rollout_rows(cfg)
    t = transformer_costs(e.family, e.resolution, e.max_sequence_length, e.gradient_checkpointing)
    vae = vae_costs(e.family, e.resolution)
    activations = max(t.batch_inference_bytes(rows), rows * vae.peak_bytes)
    fraction = cfg.cluster.rollout_num_gpus
    return RoleMemory(
        role="rollout worker", placement=f"replica of {' + '.join(parts)} ({e.dtype})", weights=weights,
        lora=2 * lora_params(cfg) * FP32, gradients=0, optimizer=0, activations=activations, load_peak=weights,
        gpu_fraction=fraction, usable=usable_bytes(card, fraction),
        notes=(f"{rows} rows per sampling batch (chains_per_request x group_size)",))


def learner_shards_base(cfg: Config) -> bool:
    """FSDP2 and ZeRO-3 shard the frozen base over the ranks; ZeRO-2 and ``learner.strategy:
    replicate`` keep a replica per rank."""
    if cfg.learner.strategy == "replicate":
        return False
    return cfg.learner.backend == "fsdp2" or cfg.learner.zero_stage == 3


def learner_rank_memory(cfg: Config, card: Card) -> RoleMemory:
    """The transformer only (T5 / CLIP / VAE are never called by the learner), sharded or replicated;
    FSDP2 / ZeRO-3 add the all-gathered current and prefetched block. LoRA default + old adapters in
    fp32, fp32 gradients of the default one, AdamW's two moments partitioned over the ranks.
    Activations: one micro-batch's forward + backward plus one no-grad forward (v_old / v_ref).
    Load peak: the whole transformer materialised on the rank before sharding."""
    e, lc = cfg.editor, cfg.learner
    name = TRANSFORMER_OF[e.family]
    width = dtype_bytes(e.dtype)
    full = parameter_count(name) * width
    shard = learner_shards_base(cfg)
    if shard:
        weights = math.ceil(full / lc.num_ranks) + 2 * largest_block_parameters(name) * width
        placement = f"{name} sharded 1/{lc.num_ranks} ({lc.backend}{'' if lc.backend == 'fsdp2' else ' ZeRO-3'})"
    else:
        weights = full
        how = "replicate strategy" if lc.strategy == "replicate" else f"ZeRO-{lc.zero_stage}"
        placement = f"{name} replicated ({how}), only the LoRA is reduced"
    n_lora = lora_params(cfg)
    t = transformer_costs(e.family, e.resolution, e.max_sequence_length, e.gradient_checkpointing)
    activations = t.batch_training_bytes(lc.micro_batch_size) + lc.micro_batch_size * t.inference_bytes
    return RoleMemory(
        role="learner rank", placement=placement, weights=weights, lora=2 * n_lora * FP32,
        gradients=n_lora * FP32, optimizer=math.ceil(2 * n_lora * FP32 / lc.num_ranks), activations=activations,
        load_peak=full, gpu_fraction=lc.num_gpus_per_rank, usable=usable_bytes(card, lc.num_gpus_per_rank),
        notes=(f"micro-batch {lc.micro_batch_size}, gradient checkpointing "
               f"{'on' if e.gradient_checkpointing else 'off'}",))


def judge_kv_bytes_per_token(component: str) -> int:
    """K and V of every layer: 2 x layers x kv_heads x head_dim x 2 bytes (bf16)."""
    text = build_meta(component).config.text_config
    return 2 * text.num_hidden_layers * text.num_key_value_heads * text.head_dim * 2


def judge_replica_memory(cfg: Config, card: Card) -> RoleMemory:
    """Weights in the judge's dtype, vLLM's profile allowance, and the KV cache for max_batch_size
    sequences of max_model_len tokens. vLLM claims gpu_memory_utilization of the whole GPU."""
    j = cfg.judge
    component = JUDGE_MODELS.get(j.model)
    if component is None:
        raise KeyError(f"judge.model {j.model!r} has no architecture in the planner; known: {sorted(JUDGE_MODELS)}")
    weights = parameter_count(component) * dtype_bytes(j.dtype)
    kv = j.scaling.max_batch_size * j.max_model_len * judge_kv_bytes_per_token(component)
    fraction = j.scaling.num_gpus
    notes = [f"KV cache for {j.scaling.max_batch_size} sequences x {j.max_model_len} tokens"]
    usable = usable_bytes(card, fraction)
    if j.backend == "vllm":
        claim = int(VLLM_GPU_MEMORY_UTILIZATION * card.memory_bytes)
        usable = min(usable, claim)
        notes.append(f"vLLM claims {VLLM_GPU_MEMORY_UTILIZATION:.0%} of the GPU")
    return RoleMemory(role="judge replica", placement=f"replica of {component} ({j.dtype}, {j.backend})",
                      weights=weights, lora=0, gradients=0, optimizer=0, activations=kv + VLLM_PROFILE_BYTES,
                      load_peak=weights, gpu_fraction=fraction, usable=usable, notes=tuple(notes))


def cc_replica_memory(cfg: Config, card: Card) -> RoleMemory:
    c = cfg.consistency
    parts = [CONSISTENCY_MODELS[m] for m in (c.detector, c.features) if m in CONSISTENCY_MODELS]
    weights = sum(parameter_count(p) for p in parts) * FP32
    scale = (c.image_size / 512) ** 2
    activations = int(c.batch_size * scale * CC_ACTIVATION_PER_IMAGE)
    fraction = c.scaling.num_gpus
    return RoleMemory(role="CC replica", placement=f"replica of {' + '.join(parts)} (float32)", weights=weights,
                      lora=0, gradients=0, optimizer=0, activations=activations, load_peak=weights,
                      gpu_fraction=fraction, usable=usable_bytes(card, fraction),
                      notes=(f"{c.batch_size} images per forward; activations are an allowance, not traced",))


def role_memories(cfg: Config, card: Card) -> list[RoleMemory]:
    return [rollout_worker_memory(cfg, card), learner_rank_memory(cfg, card), judge_replica_memory(cfg, card),
            cc_replica_memory(cfg, card)]
