"""The typed configuration tree of an edit-rl run.

Defaults are the papers' (docs/algorithms.md §3-§6): DiffusionNFT / Edit-R1
on FLUX.1-Kontext-dev with Qwen3-VL-8B as judge, MT-EditFlow's multi-turn reward design
(fine-grained average IF, advantage-level fusion, broadcast trajectory advantage). Presets in
jobs/configs/ override what differs (tiny CPU models, GRPO, FLUX.2-klein). Every section has a
`validate()` that raises ConfigError naming the bad key; `Config.validate()` runs them all and
the cross-section checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


@dataclass
class EditorConfig:
    """The policy: a flow-matching editor loaded by name (hub id) or from a local folder."""

    family: Literal["flux_kontext", "flux2_klein", "qwen_image_edit", "shapes_kontext"] = "flux_kontext"
    name_or_path: str = "black-forest-labs/FLUX.1-Kontext-dev"
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    resolution: int = 512  # explicit output size; never the pipeline's silent 1024^2 resize
    guidance_scale: float = 2.5  # Kontext-dev's distilled guidance embedding (no true CFG)
    max_sequence_length: int = 512
    gradient_checkpointing: bool = True

    def validate(self, prefix: str = "editor") -> None:
        if self.family == "shapes_kontext":  # no VAE: 4 x 4 pixel patches
            _check(self.resolution > 0 and self.resolution % 4 == 0, f"{prefix}.resolution",
                   f"must be a positive multiple of 4 (4 x 4 pixel patches), got {self.resolution}")
        else:
            _check(self.resolution > 0 and self.resolution % 16 == 0, f"{prefix}.resolution",
                   f"must be a positive multiple of 16 (VAE x8 and 2x2 packing), got {self.resolution}")
        _check(self.guidance_scale >= 0, f"{prefix}.guidance_scale", "must be >= 0")
        _check(self.max_sequence_length > 0, f"{prefix}.max_sequence_length", "must be > 0")


@dataclass
class LoRAConfig:
    """LoRA on the transformer's attention projections (Edit-R1 Kontext: r 32, alpha 64)."""

    rank: int = 32
    alpha: int = 64
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: [
        "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"])
    # The LoRA's dtype on the rollout workers, which only sample (the learner keeps float32 master
    # weights). "bfloat16" halves the adapters' memory and matmul cost there; whether it changes
    # the rollouts enough to matter is to be measured on the first GPU.
    rollout_dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    def validate(self, prefix: str = "lora") -> None:
        _check(self.rank > 0, f"{prefix}.rank", f"must be > 0, got {self.rank}")
        _check(self.alpha > 0, f"{prefix}.alpha", f"must be > 0, got {self.alpha}")
        _check(0.0 <= self.dropout < 1.0, f"{prefix}.dropout", "must be in [0, 1)")
        _check(len(self.target_modules) > 0, f"{prefix}.target_modules", "must name at least one module")


@dataclass
class SamplerConfig:
    """Rollout sampler. NFT rolls out with dpm2 (or Euler); GRPO needs the SDE (log-probs)."""

    method: Literal["dpm2", "euler", "sde"] = "dpm2"
    num_steps: int = 6
    noise_level: float = 0.7  # SDE 'a' (Flow-GRPO); the GRPO preset uses 0.9 for Kontext
    sde_kind: Literal["sde", "cps"] = "sde"
    sde_window: Optional[list[int]] = None  # [start, end): SDE only there (Flow-GRPO-Fast)
    eval_method: Literal["dpm2", "euler"] = "euler"
    eval_num_steps: int = 15

    def validate(self, prefix: str = "sampler") -> None:
        _check(self.num_steps >= 1, f"{prefix}.num_steps", f"must be >= 1, got {self.num_steps}")
        _check(self.eval_num_steps >= 1, f"{prefix}.eval_num_steps", "must be >= 1")
        _check(self.noise_level >= 0, f"{prefix}.noise_level", "must be >= 0")
        if self.sde_window is not None:
            w = self.sde_window
            _check(len(w) == 2 and 0 <= w[0] < w[1] <= self.num_steps, f"{prefix}.sde_window",
                   f"must be [start, end) with 0 <= start < end <= num_steps={self.num_steps}, got {w}")


@dataclass
class RolloutConfig:
    """Multi-turn rollouts: G trajectories of T turns per instruction chain form a group."""

    num_turns: int = 3
    group_size: int = 12
    groups_per_step: int = 24
    num_workers: int = 8
    chains_per_request: int = 1  # chains a worker rolls out per call (batching)

    def validate(self, prefix: str = "rollout") -> None:
        _check(self.num_turns >= 1, f"{prefix}.num_turns", "must be >= 1")
        _check(self.group_size >= 2, f"{prefix}.group_size",
               f"must be >= 2 (group-relative advantages need a group), got {self.group_size}")
        _check(self.groups_per_step >= 1, f"{prefix}.groups_per_step", "must be >= 1")
        _check(self.num_workers >= 1, f"{prefix}.num_workers", "must be >= 1")
        _check(self.chains_per_request >= 1, f"{prefix}.chains_per_request", "must be >= 1")


@dataclass
class NFTConfig:
    """DiffusionNFT (NVlabs/DiffusionNFT train_nft_sd3.py; Edit-R1 train_nft_kontext.py)."""

    beta: float = 1.0
    adv_clip_max: float = 5.0
    kl_weight: float = 1e-4
    timestep_fraction: float = 0.99
    decay_type: Literal[0, 1, 2] = 1
    # Ours, not the reference's: the rollouts of one group (same chain and rollout step) draw the
    # same noise levels and noise at each turn (common random numbers), so the part of the loss's
    # gradient that the noise alone decides is shared by the group and largely cancels in the
    # advantage-weighted sum (a group's advantages sum to zero). False: every sample draws its own.
    shared_group_noise: bool = False
    # Ours: train only the rollout's noise levels with sigma >= min_sigma (the grid's first levels;
    # always at least the first). 0 keeps every level, as the reference does.
    min_sigma: float = 0.0

    def validate(self, prefix: str = "objective.nft") -> None:
        _check(self.beta > 0, f"{prefix}.beta", f"must be > 0, got {self.beta}")
        _check(self.adv_clip_max > 0, f"{prefix}.adv_clip_max", "must be > 0")
        _check(self.kl_weight >= 0, f"{prefix}.kl_weight", "must be >= 0")
        _check(0 < self.timestep_fraction <= 1, f"{prefix}.timestep_fraction", "must be in (0, 1]")
        _check(0 <= self.min_sigma < 1, f"{prefix}.min_sigma", f"must be in [0, 1), got {self.min_sigma}")


@dataclass
class GRPOConfig:
    """Flow-GRPO (yifan123/flow_grpo train_sd3.py; Kontext config)."""

    clip_range: float = 1e-4
    adv_clip_max: float = 5.0
    kl_beta: float = 0.04
    timestep_fraction: float = 0.99

    def validate(self, prefix: str = "objective.grpo") -> None:
        _check(self.clip_range > 0, f"{prefix}.clip_range", "must be > 0")
        _check(self.adv_clip_max > 0, f"{prefix}.adv_clip_max", "must be > 0")
        _check(self.kl_beta >= 0, f"{prefix}.kl_beta", "must be >= 0")
        _check(0 < self.timestep_fraction <= 1, f"{prefix}.timestep_fraction", "must be in (0, 1]")


@dataclass
class ObjectiveConfig:
    name: Literal["nft", "grpo"] = "nft"
    nft: NFTConfig = field(default_factory=NFTConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)

    def validate(self, prefix: str = "objective") -> None:
        self.nft.validate(f"{prefix}.nft")
        self.grpo.validate(f"{prefix}.grpo")


@dataclass
class RewardConfig:
    """MT-EditFlow reward design (sections 4.1-4.5) on the Edit-R1 judge's scores."""

    if_strategy: Literal["fine_avg", "binary_avg", "binary_and"] = "fine_avg"
    score_min: float = 1.0  # the judge's fine-grained scale (Likert 1-5)
    score_max: float = 5.0
    binary_threshold: float = 4.0  # a turn 'succeeds' when its score >= this (binary strategies)
    fusion: Literal["advantage", "reward"] = "advantage"
    cc_weight: float = 0.15  # lambda; MT-EditFlow's best for FLUX.1 GRPO
    std_mode: Literal["global", "group"] = "global"
    adv_eps: float = 1e-4
    advantage_mode: Literal["broadcast", "per_turn"] = "broadcast"

    def validate(self, prefix: str = "reward") -> None:
        _check(self.score_max > self.score_min, f"{prefix}.score_max",
               f"must be > score_min ({self.score_min}), got {self.score_max}")
        _check(self.score_min <= self.binary_threshold <= self.score_max, f"{prefix}.binary_threshold",
               f"must lie in [score_min, score_max] = [{self.score_min}, {self.score_max}]")
        _check(self.cc_weight >= 0, f"{prefix}.cc_weight", "must be >= 0")
        _check(self.adv_eps > 0, f"{prefix}.adv_eps", "must be > 0")


@dataclass
class FilterConfig:
    """Edit-R1 low-std group filter and prompt ban."""

    enabled: bool = True
    tau_mu: float = 0.9
    tau_sigma: float = 0.05

    def validate(self, prefix: str = "filter") -> None:
        _check(0 <= self.tau_mu <= 1, f"{prefix}.tau_mu", "must be in [0, 1] (rewards are normalised)")
        _check(self.tau_sigma >= 0, f"{prefix}.tau_sigma", "must be >= 0")


@dataclass
class ServiceScaling:
    """Ray Serve autoscaling of one scoring service."""

    min_replicas: int = 1
    max_replicas: int = 4
    # Requests in flight per replica that Serve's autoscaler aims at. None: max_batch_size, so a
    # replica adds a peer only once it has more than a full batch waiting (a small fixed target
    # would scale a judge to max_replicas on one step's burst of requests).
    target_ongoing_requests: Optional[float] = None
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.05
    num_cpus: float = 1.0
    num_gpus: float = 1.0

    def validate(self, prefix: str) -> None:
        _check(1 <= self.min_replicas <= self.max_replicas, f"{prefix}.min_replicas",
               f"must satisfy 1 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")
        _check(self.target_ongoing_requests is None or self.target_ongoing_requests > 0,
               f"{prefix}.target_ongoing_requests", "must be > 0, or null for max_batch_size")
        _check(self.max_batch_size >= 1, f"{prefix}.max_batch_size", "must be >= 1")
        _check(self.batch_wait_timeout_s >= 0, f"{prefix}.batch_wait_timeout_s", "must be >= 0")
        _check(self.num_cpus >= 0 and self.num_gpus >= 0, f"{prefix}.num_cpus", "resources must be >= 0")

    @property
    def autoscaling_target(self) -> float:
        """``target_ongoing_requests``, or ``max_batch_size`` when it is None."""
        return float(self.max_batch_size if self.target_ongoing_requests is None else self.target_ongoing_requests)


@dataclass
class JudgeConfig:
    """The instruction-following judge: a Qwen-VL model served by vLLM (or transformers)."""

    model: str = "Qwen/Qwen3-VL-8B-Instruct"
    backend: Literal["vllm", "transformers", "synthetic"] = "vllm"  # synthetic: the shapes world's checker
    mode: Literal["multi_turn", "single_turn"] = "multi_turn"  # training queries once per trajectory
    thinking: bool = True  # MT-EditFlow's main runs; Edit-R1 prefers non-thinking logit scores
    scoring: Literal["logit", "sampled", "yes_no"] = "logit"  # synthetic backend: sampled = the rubric's integer
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    max_thinking_tokens: int = 512
    temperature: float = 0.0
    score_scale: Literal["1-5", "0-5"] = "1-5"  # MT-EditFlow Likert 1-5; Edit-R1 scores 0-5
    prime_answer: bool = True  # False: read the first response token (Edit-R1 server; single-turn, no thinking)
    max_model_len: int = 8192
    max_images_per_prompt: int = 4  # reference + one image per turn (multi_turn mode)
    seed: int = 0
    # vLLM engine (backend=vllm). gpu_memory_utilization: the share of the GPU the engine takes
    # (weights, activations, KV cache); max_num_seqs: sequences it batches at once (None: vLLM's
    # default); max_pixels: the image processor's largest image in pixels, also the size vLLM
    # profiles memory with (None: the processor's default, 16 megapixels for Qwen-VL).
    gpu_memory_utilization: float = 0.9
    max_num_seqs: Optional[int] = None
    max_pixels: Optional[int] = None
    scaling: ServiceScaling = field(default_factory=ServiceScaling)

    def validate(self, prefix: str = "judge") -> None:
        _check(self.max_thinking_tokens >= 1, f"{prefix}.max_thinking_tokens", "must be >= 1")
        _check(self.backend != "synthetic" or self.scoring in ("sampled", "logit"), f"{prefix}.scoring",
               f"must be 'sampled' (the rubric's integer) or 'logit' (graded) with backend=synthetic, got {self.scoring!r}")
        _check(self.temperature >= 0, f"{prefix}.temperature", "must be >= 0")
        _check(self.prime_answer or (self.mode == "single_turn" and not self.thinking), f"{prefix}.prime_answer",
               "False (read the first response token) needs mode=single_turn and thinking=false")
        _check(self.max_model_len >= 256, f"{prefix}.max_model_len", f"must be >= 256, got {self.max_model_len}")
        _check(self.max_images_per_prompt >= 2, f"{prefix}.max_images_per_prompt",
               "must be >= 2 (reference and edited image)")
        _check(0 < self.gpu_memory_utilization <= 1, f"{prefix}.gpu_memory_utilization",
               f"must be in (0, 1], got {self.gpu_memory_utilization}")
        _check(self.max_num_seqs is None or self.max_num_seqs >= 1, f"{prefix}.max_num_seqs", "must be >= 1 or null")
        _check(self.max_pixels is None or self.max_pixels > 0, f"{prefix}.max_pixels",
               f"must be > 0 or null, got {self.max_pixels}")
        self.scaling.validate(f"{prefix}.scaling")


@dataclass
class ConsistencyConfig:
    """EdiVal-CC: Grounding DINO boxes + DINOv3 features."""

    detector: str = "IDEA-Research/grounding-dino-tiny"
    features: str = "facebook/dinov3-vitb16-pretrain-lvd1689m"
    box_threshold: float = 0.35
    text_threshold: float = 0.35
    image_size: int = 512
    pairing: Literal["consecutive", "reference"] = "consecutive"  # MT-EditFlow reward / EdiVal benchmark
    batch_size: int = 16  # images per detector / feature-extractor forward
    scaling: ServiceScaling = field(default_factory=ServiceScaling)

    def validate(self, prefix: str = "consistency") -> None:
        _check(0 <= self.box_threshold <= 1, f"{prefix}.box_threshold", "must be in [0, 1]")
        _check(0 <= self.text_threshold <= 1, f"{prefix}.text_threshold", "must be in [0, 1]")
        _check(self.image_size > 0, f"{prefix}.image_size", "must be > 0")
        _check(self.pairing in ("consecutive", "reference"), f"{prefix}.pairing",
               f"must be 'consecutive' or 'reference', got {self.pairing!r}")
        _check(self.batch_size >= 1, f"{prefix}.batch_size", f"must be >= 1, got {self.batch_size}")
        self.scaling.validate(f"{prefix}.scaling")


@dataclass
class LearnerConfig:
    """LoRA-only training on N ranks (FSDP2 by default, the base replicated with ``strategy:
    replicate``, DeepSpeed ZeRO-2 or ZeRO-3 by config). A
    step's kept samples are sharded into equal numbers of micro-batches per rank; their gradients
    accumulate into ``optimizer_steps_per_step`` optimizer steps. ZeRO-3 partitions the frozen
    base too, except parameters of at most ``zero3_persistence_threshold`` elements, which stay
    whole on every rank (DeepSpeed's ``stage3_param_persistence_threshold``; 0 partitions all)."""

    backend: Literal["fsdp2", "deepspeed"] = "fsdp2"
    # backend fsdp2 only: "shard" the transformer over the ranks (FSDP2, all-gathers the frozen base
    # in every forward and backward), or "replicate" it on every rank and all-reduce only the LoRA
    # gradients once per optimizer step (when the base fits each GPU).
    strategy: Literal["shard", "replicate"] = "shard"
    zero_stage: Literal[2, 3] = 2
    zero3_persistence_threshold: int = 100_000
    num_ranks: int = 8
    lr: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    optimizer_steps_per_step: int = 1
    micro_batch_size: int = 2
    num_cpus_per_rank: float = 1.0
    num_gpus_per_rank: float = 1.0
    # Evaluation EMA (the DiffusionNFT / flow_grpo recipe): checkpoints' lora/ hold an exponential
    # moving average of the trained LoRA, updated after every optimizer step s with decay
    # min((1 + s) / (10 + s), ema_max_decay) (`edit_rl.objectives.old_policy.ema_decay`); training
    # and weight sync still use the current weights. Off: lora/ holds the last weights.
    ema: bool = False
    ema_max_decay: float = 0.9

    def validate(self, prefix: str = "learner") -> None:
        _check(self.num_ranks >= 1, f"{prefix}.num_ranks", "must be >= 1")
        _check(self.lr > 0, f"{prefix}.lr", f"must be > 0, got {self.lr}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{prefix}.betas",
               f"must be two numbers in [0, 1), got {self.betas}")
        _check(self.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
        _check(self.grad_clip > 0, f"{prefix}.grad_clip", "must be > 0")
        _check(self.optimizer_steps_per_step >= 1, f"{prefix}.optimizer_steps_per_step", "must be >= 1")
        _check(self.zero_stage in (2, 3), f"{prefix}.zero_stage", f"must be 2 or 3, got {self.zero_stage}")
        _check(self.strategy in ("shard", "replicate"), f"{prefix}.strategy",
               f"must be 'shard' or 'replicate', got {self.strategy!r}")
        _check(self.strategy == "shard" or self.backend == "fsdp2", f"{prefix}.strategy",
               f"'replicate' needs backend 'fsdp2' (DeepSpeed partitions by zero_stage), got {self.backend!r}")
        _check(self.zero3_persistence_threshold >= 0, f"{prefix}.zero3_persistence_threshold", "must be >= 0")
        _check(self.micro_batch_size >= 1, f"{prefix}.micro_batch_size", "must be >= 1")
        _check(0 <= self.ema_max_decay < 1, f"{prefix}.ema_max_decay", f"must be in [0, 1), got {self.ema_max_decay}")


@dataclass
class DataConfig:
    """Where instruction chains come from."""

    source: Literal["synthetic", "parquet", "edival"] = "synthetic"
    train_path: Optional[str] = None
    image_dir: Optional[str] = None
    synthetic_train_chains: int = 256  # source=synthetic: chains generated from the train seeds
    synthetic_image_size: int = 32
    # source=synthetic: the edit kinds training chains draw from (a curriculum); None: all seven. The
    # held-out chains always draw from all seven, so an evaluation is the same whatever this says.
    synthetic_edit_types: Optional[list[str]] = None

    def validate(self, prefix: str = "data") -> None:
        _check(self.synthetic_train_chains >= 1, f"{prefix}.synthetic_train_chains", "must be >= 1")
        if self.synthetic_edit_types is not None:
            from edit_rl.synthetic.edits import EDIT_TYPES

            kinds = self.synthetic_edit_types
            unknown = sorted(set(kinds) - set(EDIT_TYPES))
            _check(not unknown, f"{prefix}.synthetic_edit_types", f"unknown kinds {unknown}; known: {list(EDIT_TYPES)}")
            _check(len(kinds) >= 1 and len(set(kinds)) == len(kinds), f"{prefix}.synthetic_edit_types",
                   f"must list at least one kind, each once, got {kinds}")
        _check(32 <= self.synthetic_image_size <= 64, f"{prefix}.synthetic_image_size", "must be in [32, 64]")
        if self.source in ("parquet", "edival"):
            _check(self.train_path is not None, f"{prefix}.train_path",
                   f"is required when {prefix}.source={self.source!r}")


@dataclass
class EvaluationConfig:
    """The evaluation job (jobs/evaluate.py): which chains, which modes, the fixed seed.

    A turn succeeds when the single-turn judge's score is >= ``reward.binary_threshold`` on the
    judge's scale (4.0 of 1-5 for the VLM judge; the synthetic judge's rubric passes only 5)."""

    source: Literal["synthetic", "parquet", "edival"] = "synthetic"
    path: Optional[str] = None  # parquet: our chain schema; edival: oai_instruction_generation_output.csv
    image_dir: Optional[str] = None  # edival: the benchmark's input images; parquet: for relative image paths
    synthetic_chains: int = 64  # source=synthetic: held-out chains (disjoint from data.synthetic_train_chains)
    max_chains: int = 0  # 0: every chain of the source; else the first max_chains
    modes: list[Literal["multi_turn", "single_turn"]] = field(default_factory=lambda: ["multi_turn", "single_turn"])
    seed: int = 1234  # EdiVal's generate.py seed; each request's noise is fixed by (seed, chain id)
    chains_per_request: int = 4  # chains a rollout worker edits per call (one batch per turn)
    num_grids: int = 8  # per-chain image grids written to grids/ (the first chains)

    def validate(self, prefix: str = "evaluation") -> None:
        _check(self.synthetic_chains >= 1, f"{prefix}.synthetic_chains", "must be >= 1")
        _check(self.max_chains >= 0, f"{prefix}.max_chains", "must be >= 0 (0: all)")
        _check(len(self.modes) >= 1 and len(set(self.modes)) == len(self.modes), f"{prefix}.modes",
               f"must list 'multi_turn' and/or 'single_turn' once each, got {self.modes}")
        _check(self.chains_per_request >= 1, f"{prefix}.chains_per_request", "must be >= 1")
        _check(self.num_grids >= 0, f"{prefix}.num_grids", "must be >= 0")
        if self.source in ("parquet", "edival"):
            _check(self.path is not None, f"{prefix}.path", f"is required when {prefix}.source={self.source!r}")
        if self.source == "edival":
            _check(self.image_dir is not None, f"{prefix}.image_dir",
                   "is required when evaluation.source='edival' (the benchmark's input images)")


@dataclass
class TrainerConfig:
    """The single-controller driver loop."""

    num_steps: int = 700
    mode: Literal["sync", "async"] = "sync"
    seed: int = 42
    log_every: int = 1
    sample_every: int = 50
    save_every: int = 50
    # Wall-clock limit in minutes, counted from the trainer's start (actors and services included):
    # the run stops after the last step that fits, saves a checkpoint and says so. None: no limit.
    time_budget_minutes: Optional[float] = None
    # Where checkpoints and the trained LoRA go: a URI every node reaches (s3://bucket/prefix,
    # gs://, hdfs://, file:///shared/path) or an absolute path on a shared filesystem, written
    # through pyarrow.fs as <storage>/<run folder name>/checkpoints/. None: the run folder's own
    # checkpoints/ (on a cluster of several nodes only if that folder is an absolute shared path).
    storage: Optional[str] = None

    def validate(self, prefix: str = "trainer") -> None:
        _check(self.num_steps >= 1, f"{prefix}.num_steps", "must be >= 1")
        _check(self.storage is None or "://" in self.storage or self.storage.startswith("/"), f"{prefix}.storage",
               f"must be a URI (s3://, gs://, hdfs://, file://) or an absolute path, got {self.storage!r}")
        _check(self.time_budget_minutes is None or self.time_budget_minutes > 0, f"{prefix}.time_budget_minutes",
               f"must be > 0 minutes, or null for no limit; got {self.time_budget_minutes}")
        for name in ("log_every", "sample_every", "save_every"):
            _check(getattr(self, name) >= 0, f"{prefix}.{name}", "must be >= 0")


@dataclass
class ClusterConfig:
    """Where the driver connects and how roles are placed (actors/placement.py).

    Every role reserves its resources as Ray placement-group bundles before its actors start:

    * learner ranks: one bundle per rank {CPU: learner.num_cpus_per_rank, GPU: num_gpus_per_rank},
      strategy ``placement_strategy``;
    * rollout workers (training and evaluation): one bundle per worker {CPU: rollout_num_cpus,
      GPU: rollout_num_gpus}, strategy ``rollout_strategy``; a worker Ray restarts
      (``max_restarts``) comes back into its own bundle;
    * ``colocate_rollout_and_learner``: one group for both instead, placed with
      ``placement_strategy``; bundle i holds learner rank i's and rollout worker i's resources
      (summed), so that pair always shares a node (a bundle never spans nodes), and with
      fractional GPUs summing to 1 (e.g. 0.5 + 0.5) the pair shares one GPU. Ranks or workers
      beyond the pairs get bundles of their own in the same group. Nothing more is promised: which
      nodes the pairs land on is the strategy's (STRICT_PACK: all on one node; PACK: as few nodes
      as fit; SPREAD / STRICT_SPREAD: pairs across nodes);
    * Serve replicas (judge, consistency): each replica its own group of one bundle {CPU:
      scaling.num_cpus, GPU: scaling.num_gpus} with strategy ``service_strategy``, made and
      removed by Serve as it scales between min_replicas and max_replicas (with one bundle per
      replica the strategy only matters once a replica asks for several).

    A group not placed within ``placement_timeout_s`` (at startup) fails with an error naming the
    role, the resources it asked and the cluster's; on an autoscaling cluster allow for new nodes
    to boot.
    """

    STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray's placement-group strategies

    address: Optional[str] = None  # None: start (or join) a local Ray
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"  # learner ranks
    rollout_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    service_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    colocate_rollout_and_learner: bool = False
    placement_timeout_s: float = 600.0
    rollout_num_cpus: float = 1.0
    rollout_num_gpus: float = 1.0
    max_restarts: int = 3
    # torch threads of each CPU-only rollout worker and learner rank; 0: its CPU reservation rounded
    # down, at least 1 (Ray's own OMP_NUM_THREADS rule). On one small machine in sync mode, where
    # rollouts and the learner take turns, the core count lets each stage use the whole machine.
    cpu_threads: int = 0
    # The node shape the preset is sized for (the planner, jobs/plan.py, checks memory and placement
    # against it); None: not a GPU preset.
    gpu_type: Optional[Literal["b200", "h200", "h100", "a100-80"]] = None
    gpus_per_node: int = 8
    # TensorFloat-32 float32 matmuls in every role on a GPU (edit_rl.device.allow_tf32); off keeps
    # torch's default. Its speed and its effect on rewards are to be measured on the first GPU.
    allow_tf32: bool = False

    def validate(self, prefix: str = "cluster") -> None:
        for name in ("placement_strategy", "rollout_strategy", "service_strategy"):
            value = getattr(self, name)
            _check(value in self.STRATEGIES, f"{prefix}.{name}",
                   f"unknown placement-group strategy {value!r}; one of {list(self.STRATEGIES)}")
        _check(self.rollout_num_cpus >= 0 and self.rollout_num_gpus >= 0, f"{prefix}.rollout_num_cpus",
               "resources must be >= 0")
        _check(self.rollout_num_cpus > 0 or self.rollout_num_gpus > 0, f"{prefix}.rollout_num_cpus",
               "rollout_num_cpus and rollout_num_gpus are both 0: a rollout worker's placement-group bundle "
               "must reserve some resource")
        _check(self.placement_timeout_s > 0, f"{prefix}.placement_timeout_s",
               f"must be > 0 seconds, got {self.placement_timeout_s}")
        _check(not self.colocate_rollout_and_learner or self.rollout_strategy == self.placement_strategy,
               f"{prefix}.rollout_strategy",
               f"{self.rollout_strategy!r} cannot apply with colocate_rollout_and_learner=true: the rollout "
               f"workers then share the learner ranks' placement group, placed with {prefix}.placement_strategy="
               f"{self.placement_strategy!r}; set both to the same strategy")
        _check(self.max_restarts >= -1, f"{prefix}.max_restarts", "must be >= -1 (-1: unlimited)")
        _check(self.gpus_per_node >= 1, f"{prefix}.gpus_per_node", f"must be >= 1, got {self.gpus_per_node}")
        _check(self.cpu_threads >= 0, f"{prefix}.cpu_threads", f"must be >= 0 (0: from the CPU reservation), "
               f"got {self.cpu_threads}")

    def validate_roles(self, cfg: "Config", prefix: str = "cluster") -> None:
        """Checks across sections: every role's placement-group bundle must reserve something
        (Ray refuses an all-zero bundle). Run by load_config and before any group is reserved."""
        self.validate(prefix)
        lc = cfg.learner
        _check(lc.num_cpus_per_rank > 0 or lc.num_gpus_per_rank > 0, "learner.num_cpus_per_rank",
               "num_cpus_per_rank and num_gpus_per_rank are both 0: a learner rank's placement-group bundle "
               "must reserve some resource")
        for name in ("judge", "consistency"):
            scaling = getattr(cfg, name).scaling
            _check(scaling.num_cpus > 0 or scaling.num_gpus > 0, f"{name}.scaling.num_cpus",
                   f"num_cpus and num_gpus are both 0: each {name} replica reserves a placement-group bundle "
                   f"(cluster.service_strategy), which must hold some resource")


@dataclass
class Config:
    """The whole run. Loaded by edit_rl.config.load_config from a YAML preset plus overrides."""

    run_name: str = "edit-rl"
    output_dir: str = "runs"
    editor: EditorConfig = field(default_factory=EditorConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    def validate(self) -> "Config":
        for name in ("editor", "lora", "sampler", "rollout", "objective", "reward", "filter",
                     "judge", "consistency", "learner", "data", "trainer", "evaluation", "cluster"):
            getattr(self, name).validate(name)
        self.cluster.validate_roles(self)  # placement across sections (learner, rollout, services)
        # Cross-section rules.
        if self.objective.name == "grpo":
            _check(self.sampler.method == "sde", "sampler.method",
                   "objective.name=grpo needs sampler.method=sde (GRPO trains on SDE log-probabilities)")
        if self.reward.if_strategy == "fine_avg" and self.judge.scoring == "yes_no":
            raise ConfigError("reward.if_strategy: 'fine_avg' needs graded scores, but judge.scoring='yes_no'")
        # The judge reports scores on its own scale; the reward normalises with score_min/max.
        judge_scale = (0.0, 1.0) if self.judge.scoring == "yes_no" else \
            {"1-5": (1.0, 5.0), "0-5": (0.0, 5.0)}[self.judge.score_scale]
        _check((self.reward.score_min, self.reward.score_max) == judge_scale, "reward.score_min",
               f"reward.score_min/score_max = ({self.reward.score_min}, {self.reward.score_max}) must match "
               f"the judge's scale {judge_scale} (judge.score_scale={self.judge.score_scale!r}, "
               f"judge.scoring={self.judge.scoring!r})")
        return self
