"""The two scoring services as Ray Serve deployments, each autoscaled on its own.

* ``JudgeService``: the instruction-following judge (edit_rl.judge: Qwen-VL on vLLM or
  transformers; or any object with the same ``score``/``stats``), one request per trajectory.
* ``ConsistencyService``: EdiVal-CC (edit_rl.consistency: Grounding DINO + DINOv3), one request
  per trajectory, consecutive pairs (training) or reference-vs-turn (benchmark).

Requests carry the rollout's images as ``[ObjectRef]`` (wrapped, so Serve does not copy them
through the caller) plus an index; replicas fetch them from the object store. Both services
batch concurrent requests with ``@serve.batch`` (size and wait from config) and run the model
call in a thread so the replica keeps accepting requests.

Placement: each replica reserves its resources as its own placement group of one bundle
({CPU: scaling.num_cpus, GPU: scaling.num_gpus}, strategy ``cluster.service_strategy``), which
Serve creates and removes with the replica as it autoscales between min_replicas and
max_replicas. At startup a replica still waiting for resources after
``cluster.placement_timeout_s`` fails the start with ``PlacementError``; replicas already placed
but still loading their model are waited for.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Optional

# Serve's router asks replicas for their queue length with a 0.1 s deadline and logs a warning at
# every miss; a replica busy scoring a batch on a loaded CPU misses it routinely (pages of warnings
# per step were seen). Scoring requests take seconds, so a 1 s deadline costs nothing. Read when
# ray.serve is first imported; an explicit setting wins.
os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")
from ray import serve  # noqa: E402

from actors.placement import (PlacementError, cluster_report, describe_request, service_bundle, service_placement,
                              unplaced_replicas, where)
from edit_rl.config import Config
from edit_rl.config.schema import ServiceScaling

GRACEFUL_SHUTDOWN_LOOP_S = 0.25


@dataclass(frozen=True)
class ServiceTurnScores:
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
        from edit_rl.device import allow_tf32, role_device
        from edit_rl.judge.build import build_judge

        device = role_device(cfg.judge.scaling.num_gpus, "judge replica", "judge.scaling.num_gpus")
        allow_tf32(cfg.cluster.allow_tf32, device)
        self.judge = build_judge(cfg.judge, device=device)
        _configure_batching(self.score_batch, cfg.judge.scaling)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def score_batch(self, items: list[JudgeItem]) -> list[ServiceTurnScores]:
        from edit_rl.judge import JudgeRequest

        trajectories = await _fetch(items)
        requests = [JudgeRequest(t.input, tuple(t.turns), item.instructions) for t, item in zip(trajectories, items)]
        results = await asyncio.to_thread(self.judge.score, requests)
        return [ServiceTurnScores(tuple(s.value for s in r.turns), tuple(s.fallback for s in r.turns)) for r in results]

    async def __call__(self, item: JudgeItem) -> ServiceTurnScores:
        return await self.score_batch(item)

    def stats(self) -> dict:
        return vars(self.judge.stats).copy()

    def placement(self) -> dict:
        return where()


@serve.deployment(name="consistency")
class ConsistencyService:
    def __init__(self, cfg: Config):
        from edit_rl.consistency.build import build_consistency
        from edit_rl.device import allow_tf32, role_device

        device = role_device(cfg.consistency.scaling.num_gpus, "consistency replica", "consistency.scaling.num_gpus")
        allow_tf32(cfg.cluster.allow_tf32, device)
        self.scorer = build_consistency(cfg.consistency, device=device)
        self.pairing = cfg.consistency.pairing
        _configure_batching(self.score_batch, cfg.consistency.scaling)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.05)
    async def score_batch(self, items: list[ConsistencyItem]) -> list[ServiceTurnScores]:
        from edit_rl.consistency import Chain

        trajectories = await _fetch(items)
        chains = [Chain((t.input, *t.turns), item.turns) for t, item in zip(trajectories, items)]
        results = await asyncio.to_thread(self.scorer.score_chains, chains, self.pairing)
        out = []
        for pairs in results:
            # A pair with nothing to measure (a background-change turn listing no unchanged
            # object) gives None; every trajectory of a group shares the turn specs, so a
            # constant fill leaves the group-relative advantages unchanged.
            out.append(ServiceTurnScores(tuple(1.0 if p.cc is None else float(p.cc) for p in pairs),
                                  tuple(False for _ in pairs),
                                  tuple((p.object_score, p.background_score, p.check_background) for p in pairs)))
        return out

    async def __call__(self, item: ConsistencyItem) -> ServiceTurnScores:
        return await self.score_batch(item)

    def placement(self) -> dict:
        return where()


def deployment_options(scaling: ServiceScaling, strategy: str = "PACK") -> dict:
    """Serve options of one service from its config section (autoscaling, resources, and each
    replica's placement-group bundle with ``strategy``)."""
    return {
        **service_placement(scaling, strategy),
        "autoscaling_config": {"min_replicas": scaling.min_replicas, "max_replicas": scaling.max_replicas,
                               "initial_replicas": scaling.min_replicas,
                               "target_ongoing_requests": scaling.autoscaling_target},
        "max_ongoing_requests": max(2 * scaling.max_batch_size, 4),
        "ray_actor_options": {"num_cpus": scaling.num_cpus, "num_gpus": scaling.num_gpus,
                              # vLLM on CPU warns on every request about thread binding
                              "runtime_env": {"env_vars": {"VLLM_LOGGING_LEVEL": "ERROR"}}},
        "logging_config": {"log_level": "WARNING", "enable_access_log": False},
        # A stopping replica checks for unfinished requests this often (Serve's default 2 s made
        # every service shutdown take 2 s more than its work).
        "graceful_shutdown_wait_loop_s": GRACEFUL_SHUTDOWN_LOOP_S,
    }


def start_services(cfg: Config, app_prefix: str = "edit-rl"):
    """Deploy both services (Serve applications ``<app_prefix>-judge`` and ``<app_prefix>-consistency``;
    another prefix lets an evaluation run beside a training run), wait until they run, and return
    their handles. PlacementError (both applications deleted) when a replica is still unplaced
    after ``cluster.placement_timeout_s``."""
    handles = deploy_services(cfg, app_prefix)
    wait_for_services(cfg, app_prefix)
    return handles


def deploy_services(cfg: Config, app_prefix: str = "edit-rl"):
    """The first half of ``start_services``: deploy both applications and return their handles at
    once, while the replicas start (the trainer starts its learner meanwhile)."""
    cfg.cluster.validate_roles(cfg)
    start_serve()
    targets = [serve.RunTarget(service.options(**deployment_options(scaling, cfg.cluster.service_strategy)).bind(cfg),
                               name=app, route_prefix=None)
               for app, (service, _, scaling) in _services(cfg, app_prefix).items()]
    return tuple(serve.run_many(targets, wait_for_ingress_deployment_creation=False,
                                wait_for_applications_running=False))


def start_serve() -> None:
    """Start Serve on the current Ray (its HTTP proxy bound to 127.0.0.1), or join the running one."""
    serve.start(http_options={"host": "127.0.0.1"})


def deploy_fixed_replicas(cfg: Config, role: str, replicas: int, app: str):
    """One scoring service ("judge" or "consistency") as its own Serve application ``app`` with
    exactly ``replicas`` replicas (its scaling section's other settings kept, placement strategy
    PACK), waited for until it runs; its handle. Serve must be started (``start_serve``)."""
    services = {"judge": (JudgeService, cfg.judge.scaling),
                "consistency": (ConsistencyService, cfg.consistency.scaling)}
    if role not in services:
        raise ValueError(f"unknown scoring service {role!r}: expected one of {sorted(services)}")
    service, scaling = services[role]
    scaling = dataclasses.replace(scaling, min_replicas=replicas, max_replicas=replicas)
    return serve.run(service.options(**deployment_options(scaling)).bind(cfg), name=app, route_prefix=None)


def wait_for_services(cfg: Config, app_prefix: str = "edit-rl") -> None:
    """The second half of ``start_services``: wait until both applications run; on failure
    (PlacementError, a failed deployment, an interrupt) delete both and raise."""
    try:
        wait_until_running({app: (role, scaling) for app, (_, role, scaling) in _services(cfg, app_prefix).items()},
                           cfg.cluster.service_strategy, cfg.cluster.placement_timeout_s)
    except BaseException:
        stop_services(app_prefix)
        raise


def _services(cfg: Config, app_prefix: str) -> dict:
    return {f"{app_prefix}-judge": (JudgeService, "judge", cfg.judge.scaling),
            f"{app_prefix}-consistency": (ConsistencyService, "consistency", cfg.consistency.scaling)}


def stop_services(app_prefix: str = "edit-rl", timeout_s: float = 60.0, poll_s: float = 0.2) -> None:
    """Delete both services' applications (and with them their replicas' placement groups) and
    wait until both are gone; a missing one is skipped. Both deletions run at once (``serve.delete``
    one after the other waits for each in turn). TimeoutError if one is still there after
    ``timeout_s``."""
    apps = [app for app in (f"{app_prefix}-judge", f"{app_prefix}-consistency") if app in serve.status().applications]
    for app in apps:
        serve.delete(app, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while remaining := [app for app in apps if app in serve.status().applications]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Serve applications {remaining} still deleting after {timeout_s:g} s")
        time.sleep(poll_s)


def wait_until_running(apps: dict[str, tuple[str, ServiceScaling]], strategy: str, placement_timeout_s: float,
                       poll_s: float = 0.5) -> None:
    """Wait for Serve applications (name -> (role, scaling)) to run. RuntimeError if one fails
    to deploy; PlacementError if after ``placement_timeout_s`` one still has a replica waiting for
    its placement group (replicas placed but still loading their model are waited for)."""
    deadline = time.monotonic() + placement_timeout_s
    pending = dict(apps)
    while pending:
        statuses = serve.status().applications
        for app in list(pending):
            status = statuses.get(app)
            if status is None:
                continue
            if status.status == "RUNNING":
                del pending[app]
            elif status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                details = "; ".join(d.message for d in status.deployments.values() if d.message)
                raise RuntimeError(f"Serve application {app!r} failed to deploy ({status.status}): "
                                   f"{'; '.join(m for m in (status.message, details) if m)}")
        if pending and time.monotonic() > deadline:
            waiting = {app: n for app in pending if (n := unplaced_replicas(app))}
            if waiting:
                app, n = next(iter(waiting.items()))
                role, scaling = pending[app]
                bundles = [service_bundle(scaling)] * scaling.min_replicas
                raise PlacementError(
                    f"{role} replicas: {n} of {scaling.min_replicas} not placed after {placement_timeout_s:g} s "
                    f"(Serve application {app!r}): asked one bundle per replica, "
                    f"{describe_request(bundles, strategy)}; {cluster_report(service_bundle(scaling))}. "
                    f"Lower {role}.scaling.num_cpus / num_gpus or min_replicas, or add nodes. (On an autoscaling "
                    f"cluster raise cluster.placement_timeout_s to wait for new nodes.)")
        if pending:
            time.sleep(poll_s)
