"""The single controller: one driver process runs the MT-EditFlow training loop over Ray roles.

Per step: sample chains -> rollouts (workers) -> IF and CC scoring (two Serve services,
concurrently, per trajectory as it arrives) -> buffer (groups, filter, fused broadcast
advantages, shards) -> learner update (N ranks) -> new sampling-LoRA weights put once in the
object store, referenced by every later rollout request.

Modes (``trainer.mode``): ``sync`` runs those stages in order; ``async`` launches step k+1's
rollouts with the current weights before step k trains, so rollouts overlap training and the
data is at most one update stale (logged as ``staleness``).

``trainer.time_budget_minutes`` bounds the run's wall-clock time from the trainer's start: after
each step the driver stops if one more step of the mean length so far would overrun it, saves a
checkpoint there and prints how far it got (a resumed run gets the budget afresh).

Checkpoints (``step_NNNNNN/`` under ``trainer.storage``'s ``<run folder name>/checkpoints/``, or
the run folder's ``checkpoints/``; `edit_rl.storage`: every learner rank writes on its own node and
uploads through pyarrow.fs, the driver commits a folder by writing its ``driver.json`` last) hold the
learner state (LoRA default + old adapters, optimizer, RNG), the LoRA in diffusers' format, and
the driver state (step, weights version, data position, banned prompts, and in async mode the
in-flight step's weights), so a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import io
import json
import logging
import time

import numpy as np
import ray
import torch

from actors.dispatch import PendingStep, RolloutDispatcher
from actors.learner import LearnerGroup, LearnerRankError
from actors.metrics import RayMetrics
from actors.roles import start_roles
from actors.rollout_worker import ChainInput
from edit_rl.buffer import GroupAssembler, build_training_batch, shard_samples
from edit_rl.config import Config
from edit_rl.data import ChainSampler, load_training_chains, turn_specs
from edit_rl.observability import RunDir, RunLogger, StageTimer, TrajectorySample, GridTurn
from edit_rl.rewards import PromptBanList
from edit_rl.storage import RunStorage, check_storage_reaches_every_node
from edit_rl.training.checkpoint_file import load_tensor_file

log = logging.getLogger(__name__)


def out_of_time(elapsed_s: float, loop_s: float, steps_done: int, budget_minutes: float | None) -> bool:
    """Whether one more step would overrun the budget: ``elapsed_s`` (since the trainer started)
    plus the mean step so far (``loop_s`` over ``steps_done`` steps of this process) exceeds
    ``budget_minutes`` (None: never)."""
    if budget_minutes is None or steps_done < 1:
        return False
    return elapsed_s + loop_s / steps_done > 60.0 * budget_minutes


class Trainer:
    def __init__(self, cfg: Config, run: RunDir):
        self.started = time.monotonic()  # trainer.time_budget_minutes counts from here
        self.cfg = cfg
        self.run = run
        alive = sum(1 for node in ray.nodes() if node["Alive"])
        check_storage_reaches_every_node(cfg.trainer.storage, run.path, alive)
        self.storage = RunStorage.for_run(cfg.trainer.storage, run.path, run.checkpoints_dir)
        self.chains = {c.chain_id: c for c in load_training_chains(cfg.data, cfg.rollout.num_turns)}
        if len(self.chains) < cfg.rollout.groups_per_step:
            raise ValueError(f"rollout.groups_per_step={cfg.rollout.groups_per_step} needs that many distinct "
                             f"training chains a step; the data has {len(self.chains)}")
        self.sampler = ChainSampler(list(self.chains.values()), seed=cfg.trainer.seed)
        self.ban = PromptBanList()
        self.assembler = GroupAssembler(cfg.rollout.group_size, cfg.rollout.num_turns)
        self.sampling_adapter = "old" if cfg.objective.name == "nft" else "default"
        # The learner group is rebuilt in the same placement bundles after a rank failure.
        self.roles = start_roles(cfg, learner=True)
        self.dispatcher = RolloutDispatcher(cfg, self.roles.workers, self.roles.judge, self.roles.consistency)
        self.roles.learners.check_storage(self.storage.mark_reachable())
        self.step = 0
        self.version = 0
        self.weights_ref = None
        self.pending: PendingStep | None = None
        self.inflight_weights = None  # (version, ref) the pending async step samples with

    @property
    def workers(self) -> list:
        return self.roles.workers

    @property
    def learners(self) -> LearnerGroup:
        return self.roles.learners

    # ------------------------------------------------------------------ data
    def _chain_inputs(self, chain_ids: list[str]) -> list[tuple[ChainInput, tuple]]:
        out = []
        for chain_id in chain_ids:
            chain = self.chains[chain_id]
            image = np.asarray(chain.load_image(self.cfg.data.image_dir).convert("RGB"))
            inputs = ChainInput(chain_id, image, tuple(t.instruction for t in chain.turns))
            out.append((inputs, tuple(turn_specs(chain.turns, self.cfg.consistency.pairing))))
        return out

    def _launch(self, step: int, chain_ids: list[str] | None = None) -> PendingStep:
        if chain_ids is None:
            try:
                chosen = self.sampler.next(self.cfg.rollout.groups_per_step, banned=set(self.ban.state_dict()["banned"]))
            except ValueError as err:
                raise ValueError(f"step {step}: {err}. The Edit-R1 filter bans a chain once its whole group "
                                 f"succeeds (filter.tau_mu); add training chains or lower "
                                 f"rollout.groups_per_step") from err
            chain_ids = [c.chain_id for c in chosen]
        self.inflight_weights = (self.version, self.weights_ref)
        return self.dispatcher.launch(step, self._chain_inputs(chain_ids), self.version, self.weights_ref,
                                      self.assembler)

    def _sync_weights(self) -> None:
        self.weights_ref = self.learners.lora_state_ref(self.sampling_adapter)  # put by rank 0

    # ------------------------------------------------------------------ the loop
    def fit(self) -> None:
        """Train to ``trainer.num_steps``. A learner rank that dies fails its step loudly; the
        driver then rebuilds the learner group and continues from the last checkpoint (at most
        ``cluster.max_restarts`` times; without a checkpoint the error propagates)."""
        recoveries = 0
        resume_step = self._maybe_resume()
        while True:
            try:
                self._train(resume_step)
                return
            except LearnerRankError as err:
                recoveries += 1
                if recoveries > self.cfg.cluster.max_restarts or not self._checkpoints():
                    raise
                log.error("step %d failed: %s; rebuilding the learner group and resuming from the last "
                          "checkpoint (recovery %d of %d)", self.step, err, recoveries, self.cfg.cluster.max_restarts)
                self.roles.restart_learners()
                self.assembler = GroupAssembler(self.cfg.rollout.group_size, self.cfg.rollout.num_turns)
                self.pending = None
                resume_step = self._load_checkpoint(self._checkpoints()[-1])

    def _train(self, resume_step: int | None) -> None:
        cfg = self.cfg
        budget = cfg.trainer.time_budget_minutes
        logger = RunLogger(self.run, cfg.trainer.num_steps, resume_step=resume_step,
                           log_every=cfg.trainer.log_every, sinks=[RayMetrics(cfg.run_name).log],
                           deadline=None if budget is None else self.started + 60 * budget)
        if self.weights_ref is None:
            self._sync_weights()
        timer = StageTimer()
        loop_start, steps_done = time.monotonic(), 0
        try:
            while self.step < cfg.trainer.num_steps:
                if out_of_time(time.monotonic() - self.started, time.monotonic() - loop_start, steps_done, budget):
                    self._stop_for_time(steps_done)
                    return
                step = self.step
                timer.start_step()
                if self.pending is None:
                    self.pending = self._launch(step)
                outcome = self.dispatcher.collect(self.pending, self.assembler)
                for stage, seconds in outcome.timing.items():
                    timer.add(stage, seconds, images=outcome.num_images if stage == "rollout" else None)
                self.pending = None
                if cfg.trainer.mode == "async" and step + 1 < cfg.trainer.num_steps:
                    self.pending = self._launch(step + 1)  # sampled with the pre-update weights
                with timer.stage("buffer"):
                    batch = build_training_batch(outcome.groups, cfg.reward, cfg.filter, self.ban,
                                                 num_steps_per_turn=cfg.sampler.num_steps,
                                                 policy_version=self.version,
                                                 adv_clip_max=cfg.objective.nft.adv_clip_max)
                    shards = shard_samples(batch.samples, cfg.learner.num_ranks, cfg.learner.micro_batch_size)
                with timer.stage("learner", images=len(batch.samples)):
                    learner_metrics = self.learners.train_step(shards, step)
                self.version += 1
                with timer.stage("weight_sync"):
                    self._sync_weights()
                self.step = step + 1
                metrics = {**batch.stats.metrics(), **learner_metrics, **timer.finish_step(outcome.num_images),
                           **{f"retries/{k}": v for k, v in outcome.retries.items()},
                           "dropped/scoring_failed": len(outcome.dropped)}
                logger.log(step, metrics)
                if cfg.trainer.sample_every and step % cfg.trainer.sample_every == 0:
                    self._save_samples(logger, step, outcome)
                if cfg.trainer.save_every and (self.step % cfg.trainer.save_every == 0
                                               or self.step == cfg.trainer.num_steps):
                    self.save_checkpoint()
                steps_done += 1
        finally:
            logger.close()

    def _stop_for_time(self, steps_done: int) -> None:
        """End the run at the time budget: a checkpoint of the last step (unless checkpoints are off
        or it already has one) and a log line saying where it stopped."""
        cfg = self.cfg.trainer
        minutes = (time.monotonic() - self.started) / 60
        if cfg.save_every and self.step % cfg.save_every:
            self.save_checkpoint()
        print(f"trainer.time_budget_minutes={cfg.time_budget_minutes:g}: stopped after step {self.step} of "
              f"{cfg.num_steps} ({minutes:.1f} min since the trainer started, {steps_done} steps in this process; "
              "one more would overrun it)", flush=True)

    def close(self) -> None:
        """Release the run's actors, services and placement groups (the Ray cluster itself stays)."""
        self.roles.close()

    # ------------------------------------------------------------------ samples
    def _save_samples(self, logger: RunLogger, step: int, outcome) -> None:
        if not outcome.groups:
            return
        rows = []
        for traj in outcome.groups[0].trajectories:
            ref, index = outcome.images[traj.rollout.rollout_id]
            images = ray.get(ref)[index]
            chain = self.chains[traj.rollout.chain_id]
            turns = [GridTurn(img, t.instruction, float(s_if), float(s_cc)) for img, t, s_if, s_cc in
                     zip(images.turns, chain.turns, traj.if_scores.values, traj.cc_scores.values)]
            rows.append(TrajectorySample(images.input, turns))
        logger.save_samples(step, rows)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> str:
        """Write checkpoint ``step_NNNNNN`` to the run's storage; returns its URI."""
        name = f"step_{self.step:06d}"
        uri = self.storage.begin(name)
        self.learners.save_checkpoint(f"{uri}/learner")
        self.learners.save_lora(f"{uri}/lora")
        driver = {"step": self.step, "version": self.version, "sampler": self.sampler.state_dict(),
                  "ban": self.ban.state_dict(), "pending": None}
        if self.pending is not None:
            version, ref = self.inflight_weights
            buffer = io.BytesIO()
            torch.save(ray.get(ref), buffer)
            self.storage.write_bytes(name, "inflight_weights.pt", buffer.getvalue())
            driver["pending"] = {"step": self.pending.step, "version": version,
                                 "chain_ids": list(self.pending.turn_specs)}
        self.storage.commit(name, json.dumps(driver, indent=1).encode())
        log.info("checkpoint saved: %s", uri)
        return uri

    def _checkpoints(self) -> list[str]:
        """Committed checkpoints' names, oldest first."""
        return self.storage.committed()

    def _maybe_resume(self) -> int | None:
        if not self.run.resumed:
            return None
        done = self._checkpoints()
        if not done:
            log.warning("--resume: no checkpoint in %s; starting from step 0", self.storage.root)
            return None
        return self._load_checkpoint(done[-1])

    def _load_checkpoint(self, name: str) -> int:
        """Restore learner and driver state from checkpoint ``name``; returns the last step already logged."""
        driver = json.loads(self.storage.read_bytes(name, "driver.json"))
        self.learners.load_checkpoint(self.storage.uri(name, "learner"))
        self.step, self.version = driver["step"], driver["version"]
        self.sampler.load_state_dict(driver["sampler"])
        self.ban.load_state_dict(driver["ban"])
        self.weights_ref = None
        if driver["pending"] is not None:  # async: re-launch the in-flight step with its own weights
            pending = driver["pending"]
            saved_version, self.version = self.version, pending["version"]
            weights = self.storage.read_bytes(name, "inflight_weights.pt")
            self.weights_ref = ray.put(load_tensor_file(io.BytesIO(weights), name=self.storage.uri(name, "inflight_weights.pt")))
            self.pending = self._launch(pending["step"], pending["chain_ids"])
            self.version = saved_version
            self.weights_ref = None
        log.info("resumed from %s at step %d", self.storage.uri(name), self.step)
        return self.step - 1
