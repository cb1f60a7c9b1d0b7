"""The in-process reference: the synchronous training step of actors/trainer.py done in ONE Python
process with no Ray, calling the same library functions the actors call, on the same models,
batch, seeds, samplers and scorers:

    ChainSampler.next -> per request of rollout.chains_per_request chains, seeded by
    actors.dispatch.rollout_seed: actors.rollout_worker.roll_out (RolloutWorker.rollout's work,
    without Ray) -> GroupAssembler ->
    judge.score and EdivalCC.score_chains in batches of the services' max_batch_size ->
    build_training_batch -> shard_samples -> build_micro_batch -> Learner.train_step ->
    the sampling adapter's LoRA state loaded into the rollout editor (weight sync).

``rollout_batch`` (rollout to training batch) and ``train`` (learner step and weight sync) are the
same step in two halves, for diagnostics that choose the chains and the sampling seeds
(experiments/shapes/learning_signal.py).

Torch runs on ``threads`` threads (Ray gives each actor and replica OMP_NUM_THREADS=1). The loop
runs in a child process (``ReferenceProcess``) so the benchmark can interleave its steps with the
Ray system's steps in one run while the driver's memory stays the driver's.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edit_rl.buffer import TrainingBatch
    from edit_rl.config.schema import Config
    from edit_rl.training.micro_batch import MicroBatch


@contextlib.contextmanager
def child_env(threads: int) -> Iterator[None]:
    """The environment a child process starts with: ``threads`` OpenMP threads (as Ray gives an
    actor) and vLLM's per-call CPU warnings off (as the judge service sets)."""
    saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "VLLM_LOGGING_LEVEL")}
    os.environ.update(OMP_NUM_THREADS=str(threads), VLLM_LOGGING_LEVEL="ERROR")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ReferenceLoop:
    """The synchronous step in one process. ``world``: a benchmark world (`benchmarks.system.WORLDS`,
    loaded by `load_world_config`); or ``cfg``: an already-loaded config (e.g. the shapes preset with
    overrides, as `experiments.shapes.learning_signal` uses it)."""

    def __init__(self, world: str | None = None, cfg: Config | None = None) -> None:
        import torch

        from benchmarks.system import load_world_config
        from edit_rl.buffer import GroupAssembler
        from edit_rl.consistency.build import build_consistency
        from edit_rl.data import ChainSampler, load_training_chains
        from edit_rl.editors.load import load_editor
        from edit_rl.editors.lora import add_lora
        from edit_rl.editors.lora_targets import lora_config_for
        from edit_rl.judge.build import build_judge
        from edit_rl.rewards import PromptBanList
        from edit_rl.training.learner import Learner

        if (world is None) == (cfg is None):
            raise ValueError("give a world or a config (one of them)")
        cfg = self.cfg = load_world_config(world) if cfg is None else cfg
        if cfg.learner.num_ranks != 1:
            raise ValueError("the in-process reference has one learner rank; the Ray system must too")
        self.chains = {c.chain_id: c for c in load_training_chains(cfg.data)}
        self.sampler = ChainSampler(list(self.chains.values()), seed=cfg.trainer.seed)
        self.ban = PromptBanList()
        self.assembler = GroupAssembler(cfg.rollout.group_size, cfg.rollout.num_turns)
        self.adapter = "old" if cfg.objective.name == "nft" else "default"
        torch.manual_seed(cfg.trainer.seed + 0)  # RolloutWorker(cfg, 0)
        self.editor = load_editor(cfg.editor)
        add_lora(self.editor.transformer, lora_config_for(self.editor, cfg.lora), with_old=True)
        self.judge = build_judge(cfg.judge)
        self.cc = build_consistency(cfg.consistency)
        self.learner = Learner(cfg)
        self.version = 0
        self._times: dict[str, float] = {}  # the current step's stage ends (perf_counter)
        self._sync_weights()

    def _sync_weights(self) -> None:
        from edit_rl.editors.lora import load_adapter_state_dict_

        load_adapter_state_dict_(self.editor.transformer, self.learner.lora_state(self.adapter), adapter=self.adapter)

    def _rollout(self, step: int, chains: list, seed_step: int | None = None) -> list[tuple]:
        """(Rollout record, TrajectoryImages, instructions, turn specs) per trajectory. The records
        belong to ``step``; the sampling seeds are those of step ``seed_step`` (default: ``step``)."""
        from actors.dispatch import rollout_seed
        from actors.rollout_worker import ChainInput, RolloutRequest, roll_out
        from edit_rl.buffer import Rollout
        from edit_rl.data import turn_specs

        cfg, out = self.cfg, []
        per_call = cfg.rollout.chains_per_request
        for start in range(0, len(chains), per_call):
            batch = chains[start:start + per_call]
            inputs = tuple(ChainInput(c.chain_id, np.asarray(c.load_image(cfg.data.image_dir).convert("RGB")),
                                      tuple(t.instruction for t in c.turns)) for c in batch)  # the driver's
            seed = rollout_seed(cfg.trainer.seed, step if seed_step is None else seed_step, batch[0].chain_id)
            request = RolloutRequest(step, inputs, cfg.rollout.group_size, seed, self.version, [])
            metas, images, samples = roll_out(self.editor, self.adapter, cfg, request, self.version)
            by_id = {c.chain_id: c for c in batch}
            for meta, traj, per_turn in zip(metas, images, samples):
                c = by_id[meta.chain_id]
                record = Rollout(meta.rollout_id, meta.chain_id, meta.slot, meta.step, meta.policy_version,
                                 tuple(per_turn))
                out.append((record, traj, tuple(t.instruction for t in c.turns),
                            turn_specs(c.turns, cfg.consistency.pairing)))
        return out

    def _score(self, trajectories: list[tuple]) -> None:
        from edit_rl.consistency import Chain
        from edit_rl.judge import JudgeRequest

        judge_batch, cc_batch = self.cfg.judge.scaling.max_batch_size, self.cfg.consistency.scaling.max_batch_size
        for start in range(0, len(trajectories), judge_batch):
            part = trajectories[start:start + judge_batch]
            results = self.judge.score([JudgeRequest(t.input, tuple(t.turns), ins) for _, t, ins, _ in part])
            for (record, *_), r in zip(part, results):
                self.assembler.add_if_scores(record.rollout_id, [s.value for s in r.turns],
                                             fallback=[s.fallback for s in r.turns])
        self._times["judge"] = time.perf_counter()
        for start in range(0, len(trajectories), cc_batch):
            part = trajectories[start:start + cc_batch]
            results = self.cc.score_chains([Chain((t.input, *t.turns), specs) for _, t, _, specs in part],
                                           self.cfg.consistency.pairing)
            for (record, *_), pairs in zip(part, results):
                self.assembler.add_cc_scores(record.rollout_id, [1.0 if p.cc is None else float(p.cc) for p in pairs])

    def _collect(self, step: int, chains: list, seed_step: int | None = None) -> list[tuple]:
        """Expect ``chains``' groups at ``step``, roll them out (`_rollout`) and hand the records to
        the assembler; returns the trajectories to score."""
        self.assembler.expect(step, [c.chain_id for c in chains])
        trajectories = self._rollout(step, chains, seed_step)
        for record, *_ in trajectories:
            self.assembler.add_rollout(record)
        return trajectories

    def _training_batch(self, groups: list) -> TrainingBatch:
        from edit_rl.buffer import build_training_batch

        cfg = self.cfg
        return build_training_batch(groups, cfg.reward, cfg.filter, self.ban, num_steps_per_turn=cfg.sampler.num_steps,
                                    policy_version=self.version, adv_clip_max=cfg.objective.nft.adv_clip_max)

    def _micro_batches(self, batch: TrainingBatch) -> list[MicroBatch]:
        from edit_rl.buffer import shard_samples
        from edit_rl.training.micro_batch import build_micro_batch

        shards = shard_samples(batch.samples, 1, self.cfg.learner.micro_batch_size)
        return [build_micro_batch(mb) for mb in shards.ranks[0]]

    def _learn(self, micro_batches: list[MicroBatch], step: int) -> dict[str, float]:
        metrics = self.learner.train_step(micro_batches, step)
        self.version += 1
        return metrics

    def rollout_batch(self, step: int, chains: list, seed_step: int | None = None) -> TrainingBatch:
        """``chains`` rolled out as step ``step`` (with the sampling seeds of step ``seed_step``,
        default ``step``), scored and built into a training batch: `step` up to the learner."""
        self._times = {}
        trajectories = self._collect(step, chains, seed_step)
        self._score(trajectories)
        return self._training_batch(self.assembler.pop_ready())

    def train(self, batch: TrainingBatch, step: int) -> dict[str, float]:
        """One `Learner.train_step` on ``batch`` as step ``step``, then the weight sync: `step` from
        the learner on. Returns the learner's metrics."""
        metrics = self._learn(self._micro_batches(batch), step)
        self._sync_weights()
        return metrics

    def step(self, step: int) -> dict[str, float]:
        """One synchronous step; returns timing/<stage>_s, timing/step_s and the learner's loss."""
        cfg = self.cfg
        t0 = time.perf_counter()
        self._times = {}
        chains = self.sampler.next(cfg.rollout.groups_per_step, banned=set(self.ban.state_dict()["banned"]))
        trajectories = self._collect(step, chains)
        t_rollout = time.perf_counter()
        self._score(trajectories)
        groups = self.assembler.pop_ready()
        t_score = time.perf_counter()
        micro_batches = self._micro_batches(self._training_batch(groups))
        t_buffer = time.perf_counter()
        metrics = self._learn(micro_batches, step)
        t_learner = time.perf_counter()
        self._sync_weights()
        t_end = time.perf_counter()
        return {"timing/rollout_s": t_rollout - t0, "timing/judge_s": self._times["judge"] - t_rollout,
                "timing/consistency_s": t_score - self._times["judge"], "timing/buffer_s": t_buffer - t_score,
                "timing/learner_s": t_learner - t_buffer, "timing/weight_sync_s": t_end - t_learner,
                "timing/step_s": t_end - t0, "loss": float(metrics["loss"]),
                "num_samples": float(metrics["num_samples"])}


def _serve(conn: Connection, world: str, threads: int) -> None:
    """Child process: build the loop, then run the steps the parent asks for."""
    import torch

    torch.set_num_threads(threads)
    loop = ReferenceLoop(world)
    conn.send(("ready", os.getpid()))
    while True:
        step = conn.recv()
        if step is None:
            return
        conn.send(loop.step(step))


class ReferenceProcess:
    """The reference loop in a spawned child; ``step(k)`` runs its step k and returns its row."""

    def __init__(self, world: str, threads: int = 1) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, world, threads), daemon=True)
        with child_env(threads):
            self.process.start()
        self.pid: int | None = None
        self.next_step = 0

    def wait_ready(self) -> None:
        tag, self.pid = self._conn.recv()
        assert tag == "ready"

    def step(self) -> dict[str, float]:
        self._conn.send(self.next_step)
        self.next_step += 1
        return self._conn.recv()

    def close(self) -> None:
        """Ends the reference process (a no-op once it has ended)."""
        if self.process.is_alive():
            self._conn.send(None)
            self.process.join(timeout=60)
