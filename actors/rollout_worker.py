"""Rollout workers: hold the editor and its sampling LoRA, turn chains into multi-turn groups.

One call rolls out `C` chains `G` times each for `T` turns and returns `2 + C*G*T` objects (only
the first two for an evaluation request), all owned by the caller (the driver), so nothing is lost
if this worker dies after returning:

    meta    list[TrajectoryMeta]        small; the only thing the driver reads
    images  list[TrajectoryImages]      uint8 input + turn images per trajectory (for the scorers)
    ...     one TurnSample per (trajectory, turn), in trajectory-major order (for the learner)

Every request carries the weights it must sample with (a version number and an ObjectRef of the
LoRA state, put once per update): a worker restarted after a crash loads them before its first
rollout, and every rollout is reproducible from (seed, chain, weights), so a retry of lost work
gives the same trajectories.

Workers start in their role's placement-group bundles (``start_rollout_workers``, actors.placement):
worker i in bundle i, also after Ray restarts it (``cluster.max_restarts``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import ray
import torch
from PIL import Image

from actors.placement import RoleSlots, cpu_threads, where
from edit_rl.config import Config

# The model stack (edit_rl.editors: diffusers, transformers, peft) is imported inside the worker's
# methods: the driver imports this module for the actor class and the request types only.


@dataclass(frozen=True)
class ChainInput:
    """What a worker needs of one chain: its id, its input image (uint8 HWC) and instructions."""

    chain_id: str
    image: np.ndarray
    instructions: tuple[str, ...]


@dataclass(frozen=True)
class RolloutRequest:
    step: int
    chains: tuple[ChainInput, ...]
    group_size: int
    seed: int
    weights_version: int
    weights: list  # [ObjectRef of the sampling adapter's LoRA state] (wrapped: resolved lazily)
    # Evaluation: sample with sampler.eval_method / eval_num_steps and return only (meta, images).
    evaluation: bool = False


@dataclass(frozen=True)
class TrajectoryMeta:
    rollout_id: str
    chain_id: str
    slot: int
    step: int
    policy_version: int


@dataclass(frozen=True)
class TrajectoryImages:
    """uint8 (H, W, 3) arrays: the chain's input image and each turn's output."""

    input: np.ndarray
    turns: tuple[np.ndarray, ...]


def num_outputs(request: RolloutRequest) -> int:
    """How many objects ``RolloutWorker.rollout`` returns for ``request``: 2 + C*G*T (2 for an
    evaluation request)."""
    if request.evaluation:
        return 2
    return 2 + len(request.chains) * request.group_size * len(request.chains[0].instructions)


def rollout_id(step: int, chain_id: str, slot: int) -> str:
    return f"s{step}/{chain_id}/g{slot}"


@ray.remote
class RolloutWorker:
    """Thin wrapper: edit_rl's editor + rollout_chains + split_rollout, weights by version."""

    def __init__(self, cfg: Config, worker_index: int):
        from edit_rl.device import allow_tf32, role_device
        from edit_rl.editors.load import load_editor
        from edit_rl.editors.lora import add_lora, cast_adapters_
        from edit_rl.editors.lora_targets import lora_config_for

        device = role_device(cfg.cluster.rollout_num_gpus, f"rollout worker {worker_index}", "cluster.rollout_num_gpus")
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(cfg, cfg.cluster.rollout_num_cpus))
        allow_tf32(cfg.cluster.allow_tf32, device)
        torch.manual_seed(cfg.trainer.seed + worker_index)
        self.cfg = cfg
        self.editor = load_editor(cfg.editor, device)
        add_lora(self.editor.transformer, lora_config_for(self.editor, cfg.lora), with_old=True)
        cast_adapters_(self.editor.transformer, getattr(torch, cfg.lora.rollout_dtype))
        # DiffusionNFT samples with the old policy; Flow-GRPO with the current one.
        self.adapter = "old" if cfg.objective.name == "nft" else "default"
        self.version = -1
        self.pid = os.getpid()

    def ping(self) -> int:
        return self.pid

    def placement(self) -> dict:
        """Node, placement group and GPUs this worker runs on (actors.placement.where)."""
        return where()

    def weights_version(self) -> int:
        return self.version

    def _ensure_weights(self, version: int, weights: list) -> None:
        if version == self.version:
            return
        from edit_rl.editors.lora import load_adapter_state_dict_

        state = ray.get(weights[0])
        load_adapter_state_dict_(self.editor.transformer, state, adapter=self.adapter)
        self.version = version

    def load_weights(self, version: int, weights: list) -> float:
        """Fetch and load weights ``version`` now, as the next rollout would; the seconds it took."""
        start = time.perf_counter()
        self._ensure_weights(version, weights)
        return time.perf_counter() - start

    def rollout(self, request: RolloutRequest):
        self._ensure_weights(request.weights_version, request.weights)
        meta, images, samples = roll_out(self.editor, self.adapter, self.cfg, request, self.version)
        return (meta, images, *(sample for per_turn in samples for sample in per_turn))


def roll_out(editor, adapter: str, cfg: Config, request: RolloutRequest, version: int) -> tuple[list, list, list]:
    """A worker's rollout of ``request`` with ``editor`` (sampling with LoRA adapter ``adapter``,
    whose weights are ``version``), in any process: per trajectory (rows chain * G + slot) its
    TrajectoryMeta, its TrajectoryImages and its list of TurnSamples (empty for an evaluation:
    their conditions are large and nothing trains on them)."""
    from edit_rl.editors.images import pil_to_tensor, uint8_images
    from edit_rl.editors.lora import active_adapter
    from edit_rl.editors.rollout import rollout_chains
    from edit_rl.training.turn_sample import split_rollout

    inputs = pil_to_tensor([Image.fromarray(c.image) for c in request.chains], cfg.editor.resolution)
    generator = torch.Generator().manual_seed(request.seed)
    with active_adapter(editor.transformer, adapter):
        result = rollout_chains(editor, inputs, [list(c.instructions) for c in request.chains],
                                request.group_size, cfg.sampler, generator, evaluation=request.evaluation)
    if request.evaluation:
        samples = [[] for _ in range(len(request.chains) * request.group_size)]
    else:
        samples = split_rollout(result)  # [trajectory][turn], rows c * G + g
    turn_images = [uint8_images(turn.images) for turn in result.turns]
    input_images = uint8_images(result.input_images)
    meta, images = [], []
    for row in range(len(samples)):
        chain = request.chains[row // request.group_size]
        slot = row % request.group_size
        meta.append(TrajectoryMeta(rollout_id(request.step, chain.chain_id, slot), chain.chain_id, slot,
                                   request.step, version))
        images.append(TrajectoryImages(input_images[row], tuple(t[row] for t in turn_images)))
    return meta, images, samples


def start_rollout_workers(cfg: Config, slots: RoleSlots) -> list:
    """``cfg.rollout.num_workers`` RolloutWorkers, worker i in bundle ``slots.bundle_indices[i]``
    with {CPU: cluster.rollout_num_cpus, GPU: rollout_num_gpus}. The scheduling strategy is part
    of the actor, so a worker Ray restarts (up to ``cluster.max_restarts``) comes back into the
    same bundle; removing the placement group stops them."""
    cc = cfg.cluster
    return [RolloutWorker.options(num_cpus=cc.rollout_num_cpus, num_gpus=cc.rollout_num_gpus,
                                  max_restarts=cc.max_restarts, max_task_retries=0,
                                  scheduling_strategy=slots.scheduling_strategy(i)).remote(cfg, i)
            for i in range(cfg.rollout.num_workers)]


def wait_for_rollout_workers(workers: list) -> list[int]:
    """Block until every worker has loaded its editor; their process ids. A worker whose start
    failed (e.g. it reserved a GPU its node lacks: edit_rl.device.role_device) raises its error
    here, before any rollout is sent."""
    pings = [w.ping.remote() for w in workers]
    pids = []
    for index, ping in enumerate(pings):
        try:
            pids.append(ray.get(ping))
        except ray.exceptions.RayActorError as err:
            raise RuntimeError(f"rollout worker {index} failed to start: {err}") from err
    return pids


def stop_rollout_workers(workers: list) -> None:
    """Kill the workers (not restarted)."""
    for worker in workers:
        ray.kill(worker, no_restart=True)


def roll_out_in_turn(workers: list, requests: list[RolloutRequest]) -> list[list]:
    """Send request i to worker i mod len(workers), all at once, and wait until every worker
    answered (its trajectories' metadata); each request's output references (see the module
    docstring: meta, images, then the samples)."""
    outputs = []
    for i, request in enumerate(requests):
        worker = workers[i % len(workers)]
        outputs.append(list(worker.rollout.options(num_returns=num_outputs(request)).remote(request)))
    ray.get([refs[0] for refs in outputs])
    return outputs


def push_weights(workers: list, version: int, weights: ray.ObjectRef) -> list[float]:
    """Make every worker fetch and load ``weights`` as weights ``version`` now (a rollout would
    do it lazily), and wait; each worker's seconds inside."""
    return ray.get([w.load_weights.remote(version, [weights]) for w in workers])
