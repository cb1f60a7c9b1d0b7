"""How long each role works per training step, how long it waits, and the bytes a step moves.

Compute time = FLOPs / (bf16 peak x an assumed utilisation); transformer and VAE FLOPs come from
the fake-tensor traces, text encoders, judge and CC from the dense estimate. The judge's thinking
tokens are decoded at the speed of reading its weights once per token (memory bound). FSDP2 /
ZeRO-3 all-gathers and the LoRA all-reduce go over NVLink and are assumed to overlap compute: a
learner rank takes the longer of the two. A sync step runs rollout, scoring and learning one after
another; an async step overlaps rollout + scoring with the learner on the previous step's samples.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from edit_rl.config.schema import Config
from edit_rl.planning.architectures import (CONSISTENCY_MODELS, EDITOR_COMPONENTS, JUDGE_MODELS, TRANSFORMER_OF,
                                            build_meta, parameter_count)
from edit_rl.planning.cards import Card
from edit_rl.planning.component_costs import dense_forward_flops, vae_costs
from edit_rl.planning.role_memory import FP32, dtype_bytes, learner_shards_base, lora_params
from edit_rl.planning.transformer_costs import image_tokens, transformer_costs

JUDGE_PROMPT_TOKENS = 256  # rubric and instructions around the images
JUDGE_ANSWER_TOKENS = 16  # without thinking: the score and a few tokens
CLIP_TOKENS = 77


@dataclass(frozen=True)
class RoleTime:
    role: str
    seconds: float
    flops: float  # per replica / rank
    detail: str


@dataclass(frozen=True)
class StepBalance:
    times: list[RoleTime]
    step_seconds: float
    mode: str
    weight_sync_bytes: int
    sample_bytes: int
    fsdp_gather_bytes_per_rank: int

    def idle_share(self, role: str) -> float:
        busy = next(t.seconds for t in self.times if t.role == role)
        return max(0.0, 1.0 - busy / self.step_seconds)


def classifier_free_passes(cfg: Config) -> int:
    """Two transformer passes per step with true CFG (FLUX.2-klein base, Qwen-Image-Edit at
    guidance_scale > 1); FLUX.1-Kontext-dev's guidance is distilled into one pass."""
    return 2 if cfg.editor.family != "flux_kontext" and cfg.editor.guidance_scale > 1 else 1


def text_encoder_flops(cfg: Config) -> int:
    e = cfg.editor
    encoders = EDITOR_COMPONENTS[e.family][1:-1]
    return sum(dense_forward_flops(name, CLIP_TOKENS if name == "clip_l_text" else e.max_sequence_length)
               for name in encoders)


def trained_levels(cfg: Config) -> int:
    """Noise levels (NFT) or SDE steps (GRPO) each turn sample is trained on: int(fraction x n), >= 1."""
    s, o = cfg.sampler, cfg.objective
    if o.name == "nft":
        return max(1, int(o.nft.timestep_fraction * s.num_steps))
    sde_steps = s.num_steps if s.sde_window is None else s.sde_window[1] - s.sde_window[0]
    return max(1, int(o.grpo.timestep_fraction * sde_steps))


def no_grad_passes_per_level(cfg: Config) -> int:
    """NFT: v_old, plus v_ref when kl_weight > 0; GRPO: the reference mean when kl_beta > 0."""
    o = cfg.objective
    if o.name == "nft":
        return 1 + (o.nft.kl_weight > 0)
    return int(o.grpo.kl_beta > 0)


def sample_bytes(cfg: Config) -> int:
    """One TurnSample: x0 (fp32), its condition (text embeddings, pooled, reference latents in the
    editor's dtype) and, for SDE rollouts, x_j and x_{j+1} of every SDE step (fp32) and log-probs."""
    e = cfg.editor
    transformer = build_meta(TRANSFORMER_OF[e.family]).config
    tokens = image_tokens(e.resolution)
    latent = tokens * transformer.in_channels
    width = dtype_bytes(e.dtype)
    condition = (e.max_sequence_length * transformer.joint_attention_dim + latent) * width
    if e.family == "flux_kontext":
        condition += transformer.pooled_projection_dim * width
    sde = 0
    if cfg.sampler.method == "sde":
        steps = cfg.sampler.num_steps if cfg.sampler.sde_window is None else \
            cfg.sampler.sde_window[1] - cfg.sampler.sde_window[0]
        sde = steps * (2 * latent * FP32 + FP32)
    return latent * FP32 + condition + sde


def step_balance(cfg: Config, card: Card, utilisation: float) -> StepBalance:
    e, r, lc = cfg.editor, cfg.rollout, cfg.learner
    rate = card.bf16_tflops * 1e12 * utilisation
    t = transformer_costs(e.family, e.resolution, e.max_sequence_length, e.gradient_checkpointing)
    vae = vae_costs(e.family, e.resolution)
    trajectories = r.groups_per_step * r.group_size
    samples = trajectories * r.num_turns

    per_turn = (cfg.sampler.num_steps * classifier_free_passes(cfg) * t.forward_flops + text_encoder_flops(cfg)
                + vae.encode_flops + vae.decode_flops)
    rollout_flops = math.ceil(trajectories / r.num_workers) * r.num_turns * per_turn
    rollout = RoleTime("rollout worker", rollout_flops / rate / cfg.cluster.rollout_num_gpus, rollout_flops,
                       f"{math.ceil(trajectories / r.num_workers)} trajectories x {r.num_turns} turns x "
                       f"{cfg.sampler.num_steps} steps per worker")

    j = cfg.judge
    judge_params = parameter_count(JUDGE_MODELS[j.model])
    images = (r.num_turns + 1, 1) if j.mode == "multi_turn" else (2, r.num_turns)
    queries = trajectories * images[1]
    prefill_tokens = images[0] * (e.resolution // 32) ** 2 + JUDGE_PROMPT_TOKENS
    decode_tokens = j.max_thinking_tokens if j.thinking else JUDGE_ANSWER_TOKENS
    replicas = j.scaling.max_replicas
    prefill = 2 * judge_params * prefill_tokens * queries / replicas
    decode_rounds = math.ceil(queries / (replicas * j.scaling.max_batch_size)) * decode_tokens
    decode_seconds = decode_rounds * judge_params * dtype_bytes(j.dtype) / (card.hbm_tb_s * 1e12)
    judge_gpu = max(j.scaling.num_gpus, 1e-9)
    judge = RoleTime("judge replica", (prefill / rate + decode_seconds) / min(judge_gpu, 1.0),
                     prefill + 2 * judge_params * decode_rounds,
                     f"{queries} queries over {replicas} replicas, {decode_tokens} decoded tokens each")

    c = cfg.consistency
    cc_params = sum(parameter_count(CONSISTENCY_MODELS[m]) for m in (c.detector, c.features)
                    if m in CONSISTENCY_MODELS)
    cc_flops = 2 * cc_params * (c.image_size // 16) ** 2 * 2 * samples / c.scaling.max_replicas
    cc = RoleTime("CC replica", cc_flops / rate / max(c.scaling.num_gpus, 1e-9), cc_flops,
                  f"{samples} image pairs over {c.scaling.max_replicas} replicas")

    levels = trained_levels(cfg)
    per_level = t.training_flops + no_grad_passes_per_level(cfg) * t.forward_flops
    learner_flops = math.ceil(samples / lc.num_ranks) * levels * per_level
    full = parameter_count(TRANSFORMER_OF[e.family]) * dtype_bytes(e.dtype)
    micro_batches = math.ceil(samples / lc.num_ranks / lc.micro_batch_size)
    gathers_per_level = (2 + no_grad_passes_per_level(cfg)) if learner_shards_base(cfg) else 0  # fwd, bwd, no-grad
    gather = int(micro_batches * levels * gathers_per_level * full * (lc.num_ranks - 1) / lc.num_ranks)
    reduce = int(lora_params(cfg) * FP32 * 2 * (lc.num_ranks - 1) / lc.num_ranks * lc.optimizer_steps_per_step)
    comm_seconds = (gather + reduce) / (card.nvlink_gb_s * 1e9)
    compute_seconds = learner_flops / rate / lc.num_gpus_per_rank
    learner = RoleTime("learner rank", max(compute_seconds, comm_seconds), learner_flops,
                       f"{math.ceil(samples / lc.num_ranks)} turn samples x {levels} levels per rank; compute "
                       f"{compute_seconds:.0f} s, NVLink {comm_seconds:.0f} s (all-gathers "
                       f"{gather / 2 ** 40:.1f} TiB)")

    scoring = max(judge.seconds, cc.seconds)
    if cfg.trainer.mode == "sync":
        step = rollout.seconds + scoring + learner.seconds
    else:
        step = max(rollout.seconds + scoring, learner.seconds)
    lora_sync = lora_params(cfg) * FP32 * r.num_workers
    return StepBalance(times=[rollout, learner, judge, cc], step_seconds=step, mode=cfg.trainer.mode,
                       weight_sync_bytes=lora_sync, sample_bytes=samples * sample_bytes(cfg),
                       fsdp_gather_bytes_per_rank=gather)
