"""The two scoring services as Ray Serve deployments, each autoscaled on its own.

* ``JudgeService``: the instruction-following judge (edit_rl.judge: Qwen-VL on vLLM or
  transformers; or any object with the same ``score``/``stats``), one request per trajectory.
* ``ConsistencyService``: EdiVal-CC (edit_rl.consistency: Grounding DINO + DINOv3), one request
  per trajectory, consecutive pairs (training) or reference-vs-turn (benchmark).

Requests carry the rollout's images as ``[ObjectRef]`` (wrapped, so Serve does not copy them
through the caller) plus an index; replicas fetch them from the object store. Both services
batch concurrent requests with ``@serve.batch`` (size and wait from config) and run the model
call in a thread so the replica keeps accepting requests.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional

from ray import serve

from edit_rl.config import Config
from edit_rl.config.schema import ServiceScaling


@dataclass(frozen=True)
class TurnScores:
    """Per-turn scores of one trajectory and whether each is a counted fallback. Consistency also
    returns each pair's terms (object score, background score, background checked), None where not
    measured: the benchmark's EdiVal-CC aggregates them (the evaluation job)."""

    values: tuple[float, ...]
    fallback: tuple[bool, ...]
    terms: tuple[tuple[Optional[float], Optional[float], bool], ...] = ()


@dataclass(frozen=True)
class JudgeItem:
    images: list  # [ObjectRef of list[TrajectoryImages]]
    index: int
    instructions: tuple[str, ...]


@dataclass(frozen=True)
class ConsistencyItem:
    images: list  # [ObjectRef of list[TrajectoryImages]]
    index: int
    turns: tuple  # one edit_rl.consistency.TurnSpec per turn


def _configure_batching(method, scaling: ServiceScaling) -> None:
    method.set_max_batch_size(scaling.max_batch_size)
    method.set_batch_wait_timeout_s(scaling.batch_wait_timeout_s)


async def _fetch(items) -> list:
    """Each item's TrajectoryImages, fetching every distinct object once."""
    refs = {id(item.images[0]): item.images[0] for item in items}
    fetched = dict(zip(refs, await asyncio.gather(*refs.values())))
    return [fetched[id(item.images[0])][item.index] for item in items]


@serve.deployment(name="judge")
class JudgeService:
    def __init__(self, cfg: Config):
        from edit_rl.judge import build_judge

        self.judge = build_judge(cfg.judge)
        _configure_batching(self.score_batch, cfg.judge.scaling)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def score_batch(self, items: list[JudgeItem]) -> list[TurnScores]:
        from edit_rl.judge import JudgeRequest

        trajectories = await _fetch(items)
        requests = [JudgeRequest(t.input, tuple(t.turns), item.instructions) for t, item in zip(trajectories, items)]
        results = await asyncio.to_thread(self.judge.score, requests)
        return [TurnScores(tuple(s.value for s in r.turns), tuple(s.fallback for s in r.turns)) for r in results]

    async def __call__(self, item: JudgeItem) -> TurnScores:
        return await self.score_batch(item)

    def stats(self) -> dict:
        return vars(self.judge.stats).copy()


@serve.deployment(name="consistency")
class ConsistencyService:
    def __init__(self, cfg: Config):
        from edit_rl.consistency import EdivalCC

        self.scorer = EdivalCC.from_config(cfg.consistency)
        self.pairing = cfg.consistency.pairing
        _configure_batching(self.score_batch, cfg.consistency.scaling)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def score_batch(self, items: list[ConsistencyItem]) -> list[TurnScores]:
        from edit_rl.consistency import Chain

        trajectories = await _fetch(items)
        chains = [Chain((t.input, *t.turns), item.turns) for t, item in zip(trajectories, items)]
        results = await asyncio.to_thread(self.scorer.score_chains, chains, self.pairing)
        out = []
        for pairs in results:
            # A pair with nothing to measure (a background-change turn listing no unchanged
            # object) gives None; every trajectory of a group shares the turn specs, so a
            # constant fill leaves the group-relative advantages unchanged.
            out.append(TurnScores(tuple(1.0 if p.cc is None else float(p.cc) for p in pairs),
                                  tuple(False for _ in pairs),
                                  tuple((p.object_score, p.background_score, p.check_background) for p in pairs)))
        return out

    async def __call__(self, item: ConsistencyItem) -> TurnScores:
        return await self.score_batch(item)


def deployment_options(scaling: ServiceScaling) -> dict:
    """Serve options of one service from its config section (autoscaling, resources)."""
    return {
        "autoscaling_config": {"min_replicas": scaling.min_replicas, "max_replicas": scaling.max_replicas,
                               "initial_replicas": scaling.min_replicas,
                               "target_ongoing_requests": scaling.target_ongoing_requests},
        "max_ongoing_requests": max(2 * scaling.max_batch_size, 4),
        "ray_actor_options": {"num_cpus": scaling.num_cpus, "num_gpus": scaling.num_gpus,
                              # vLLM on CPU warns on every request about thread binding
                              "runtime_env": {"env_vars": {"VLLM_LOGGING_LEVEL": "ERROR"}}},
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
    }


def start_services(cfg: Config, app_prefix: str = "edit-rl"):
    """Deploy both services (Serve applications ``<app_prefix>-judge`` and ``<app_prefix>-consistency``;
    another prefix lets an evaluation run beside a training run) and return their handles."""
    serve.start(http_options={"host": "127.0.0.1"})
    judge = serve.run(JudgeService.options(**deployment_options(cfg.judge.scaling)).bind(cfg),
                      name=f"{app_prefix}-judge", route_prefix=None)
    consistency = serve.run(ConsistencyService.options(**deployment_options(cfg.consistency.scaling)).bind(cfg),
                            name=f"{app_prefix}-consistency", route_prefix=None)
    return judge, consistency
