"""Placement of a run's roles from ``cfg.cluster`` (the policy is ClusterConfig's docstring):
every role reserves its resources as Ray placement-group bundles before its actors start, so
which roles share nodes or GPUs is decided by config, and a request the cluster cannot meet fails
with an error instead of leaving actors pending forever.

    placement = RolePlacement(cfg)                       # rollout workers' + learner ranks' groups
    workers = start_rollout_workers(cfg, placement.rollout)          # actors.rollout_worker
    learners = LearnerGroup(cfg, placement.learner)                   # actors.learner
    ...
    placement.remove()                                   # at shutdown (also stops their actors)

Serve replicas reserve a group each through their deployment options (``service_placement``);
``unplaced_replicas`` tells the services' startup (actors.scoring_services) whether a replica is
still waiting for resources.
"""
from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ray
from ray.util.placement_group import PlacementGroup, placement_group, placement_group_table, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from edit_rl.config import Config
from edit_rl.config.schema import ServiceScaling

log = logging.getLogger(__name__)
Bundle = dict[str, float]
LEARNER_HINT = "Lower learner.num_cpus_per_rank / num_gpus_per_rank or learner.num_ranks, or add nodes."
ROLLOUT_HINT = "Lower cluster.rollout_num_cpus / rollout_num_gpus or rollout.num_workers, or add nodes."


class PlacementError(RuntimeError):
    """A role's placement group was not placed in time; the message names the role, what it asked
    and what the cluster has."""


# ---------------------------------------------------------------------- bundles
def bundle(num_cpus: float, num_gpus: float) -> Bundle:
    """{CPU, GPU} without zero entries (Ray refuses a bundle of only zeros; config validation
    guarantees one of them is > 0)."""
    return {k: float(v) for k, v in (("CPU", num_cpus), ("GPU", num_gpus)) if v}


def learner_bundle(cfg: Config) -> Bundle:
    return bundle(cfg.learner.num_cpus_per_rank, cfg.learner.num_gpus_per_rank)


def rollout_bundle(cfg: Config) -> Bundle:
    return bundle(cfg.cluster.rollout_num_cpus, cfg.cluster.rollout_num_gpus)


def service_bundle(scaling: ServiceScaling) -> Bundle:
    return bundle(scaling.num_cpus, scaling.num_gpus)


def merge(*bundles: Bundle) -> Bundle:
    out: Bundle = {}
    for b in bundles:
        for key, value in b.items():
            out[key] = out.get(key, 0.0) + value
    return out


def colocated_bundles(cfg: Config) -> list[Bundle]:
    """Bundle k holds learner rank k's resources (k < num_ranks) plus rollout worker k's (k <
    num_workers): one bundle per pair, then the unpaired ranks or workers alone."""
    ranks, workers = cfg.learner.num_ranks, cfg.rollout.num_workers
    return [merge(learner_bundle(cfg) if k < ranks else {}, rollout_bundle(cfg) if k < workers else {})
            for k in range(max(ranks, workers))]


def service_placement(scaling: ServiceScaling, strategy: str) -> dict:
    """Serve deployment options giving each replica its own placement group of one bundle of the
    replica's resources (Serve creates and removes it with the replica, also when autoscaling)."""
    return {"placement_group_bundles": [service_bundle(scaling)], "placement_group_strategy": strategy}


# ---------------------------------------------------------------------- reserving
def _fmt(resources: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in resources.items()) + "}"


def cluster_report(keys: Iterable[str]) -> str:
    """The cluster's total, available and largest-node amounts of ``keys`` (from ray.cluster_resources)."""
    keys = sorted(set(keys)) or ["CPU", "GPU"]
    total, available = ray.cluster_resources(), ray.available_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in keys}
    return (f"the cluster has {_fmt({k: total.get(k, 0.0) for k in keys})} in all, "
            f"{_fmt({k: available.get(k, 0.0) for k in keys})} available, at most {_fmt(largest)} on one node "
            f"({len(nodes)} node(s))")


def describe_request(bundles: Sequence[Bundle], strategy: str) -> str:
    distinct: dict[str, int] = {}
    for b in bundles:
        distinct[_fmt(b)] = distinct.get(_fmt(b), 0) + 1
    parts = ", ".join(f"{n} x {shape}" for shape, n in distinct.items())
    return f"{len(bundles)} bundle(s) ({parts}; {_fmt(merge(*bundles))} in all), strategy {strategy}"


def reserve(role: str, bundles: Sequence[Bundle], strategy: str, timeout_s: float, hint: str = "") -> PlacementGroup:
    """A placement group of ``bundles``, once placed; PlacementError (group removed) if it is not
    placed within ``timeout_s``."""
    group = placement_group([dict(b) for b in bundles], strategy=strategy,
                            name=f"edit-rl-{re.sub('[^a-z]+', '-', role.lower()).strip('-')}-{uuid.uuid4().hex[:8]}")
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        keys = {k for b in bundles for k in b}
        needs = {"STRICT_PACK": " STRICT_PACK needs one node holding every bundle.",
                 "STRICT_SPREAD": " STRICT_SPREAD needs a node of its own for every bundle."}.get(strategy, "")
        raise PlacementError(
            f"{role}: placement group not placed after {timeout_s:g} s: asked {describe_request(bundles, strategy)}; "
            f"{cluster_report(keys)}.{needs}" + (f" {hint}" if hint else "")
            + " (On an autoscaling cluster raise cluster.placement_timeout_s to wait for new nodes.)")
    log.info("%s: placed %s", role, describe_request(bundles, strategy))
    return group


@dataclass(frozen=True)
class RoleSlots:
    """The bundles of a placement group that one role's actors run in: actor i in bundle
    ``bundle_indices[i]``."""

    role: str
    group: PlacementGroup
    bundle_indices: tuple[int, ...]

    def scheduling_strategy(self, i: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=self.bundle_indices[i])


class RolePlacement:
    """The placement groups of a run's actor roles (see ClusterConfig): the rollout workers' and
    (``learner=True``) the learner ranks', separate or one co-located group. ``remove()`` releases
    them (and stops every actor still in them)."""

    def __init__(self, cfg: Config, learner: bool = True) -> None:
        cfg.cluster.validate_roles(cfg)
        cc, workers, ranks = cfg.cluster, cfg.rollout.num_workers, cfg.learner.num_ranks
        self.groups: list[PlacementGroup] = []
        self.colocated = learner and cc.colocate_rollout_and_learner
        self.learner: RoleSlots | None = None
        try:
            if self.colocated:
                role = "learner ranks + rollout workers (co-located)"
                group = self._reserve(role, colocated_bundles(cfg), cc.placement_strategy, cc.placement_timeout_s,
                                      "Lower the learner ranks' or rollout workers' resources or numbers, change "
                                      "cluster.placement_strategy, set cluster.colocate_rollout_and_learner=false, "
                                      "or add nodes.")
                self.rollout = RoleSlots(role, group, tuple(range(workers)))
                self.learner = RoleSlots(role, group, tuple(range(ranks)))
            else:
                group = self._reserve("rollout workers", [rollout_bundle(cfg)] * workers, cc.rollout_strategy,
                                      cc.placement_timeout_s, ROLLOUT_HINT)
                self.rollout = RoleSlots("rollout workers", group, tuple(range(workers)))
                if learner:
                    group = self._reserve("learner ranks", [learner_bundle(cfg)] * ranks, cc.placement_strategy,
                                          cc.placement_timeout_s, LEARNER_HINT)
                    self.learner = RoleSlots("learner ranks", group, tuple(range(ranks)))
        except BaseException:
            self.remove()
            raise

    def _reserve(self, role: str, bundles: Sequence[Bundle], strategy: str, timeout_s: float,
                 hint: str) -> PlacementGroup:
        group = reserve(role, bundles, strategy, timeout_s, hint)
        self.groups.append(group)
        return group

    def remove(self) -> None:
        """Release the groups (idempotent); actors still in them are stopped by Ray."""
        for group in self.groups:
            remove_placement_group(group)
        self.groups = []


# ---------------------------------------------------------------------- introspection
def unplaced_replicas(app_name: str) -> int:
    """How many of a Serve application's replica placement groups are still waiting for resources
    (Serve names each after its replica: ``SERVE_REPLICA::<app>#<deployment>#<id>``)."""
    return sum(1 for pg in placement_group_table().values()
               if f"::{app_name}#" in (pg.get("name") or "") and pg.get("state") in ("PENDING", "RESCHEDULING"))


def where() -> dict:
    """Where the calling actor runs: its node, placement group (hex, None outside one), GPUs and
    torch threads."""
    import torch

    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "placement_group_id": ctx.get_placement_group_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "pid": os.getpid(),
            "torch_threads": torch.get_num_threads()}


def cpu_threads(cfg: Config, num_cpus: float) -> int:
    """torch threads for a CPU-only actor reserving ``num_cpus``: ``cluster.cpu_threads`` when set,
    else the reservation rounded down, at least 1."""
    return cfg.cluster.cpu_threads or max(1, int(num_cpus))
