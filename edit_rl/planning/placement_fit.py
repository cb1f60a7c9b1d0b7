"""Whether a preset's placement groups fit its node shape (cluster.gpus_per_node), and how many
nodes it needs at the services' minimum and maximum scale (first-fit decreasing over the groups
that must share a node)."""
from __future__ import annotations

from dataclasses import dataclass

from edit_rl.config.schema import Config


@dataclass(frozen=True)
class PlacementCheck:
    role: str
    ok: bool
    message: str


def _group_items(cfg: Config, scale: str) -> list[float]:
    """GPU amounts that must each land on one node: a STRICT_PACK group whole, else one per bundle."""
    c, lc, r = cfg.cluster, cfg.learner, cfg.rollout
    items: list[float] = []
    if c.colocate_rollout_and_learner:
        pairs = min(lc.num_ranks, r.num_workers)
        bundles = [lc.num_gpus_per_rank + c.rollout_num_gpus] * pairs
        bundles += [lc.num_gpus_per_rank] * (lc.num_ranks - pairs) + [c.rollout_num_gpus] * (r.num_workers - pairs)
        items += [sum(bundles)] if c.placement_strategy == "STRICT_PACK" else bundles
    else:
        learner = [lc.num_gpus_per_rank] * lc.num_ranks
        rollout = [c.rollout_num_gpus] * r.num_workers
        items += [sum(learner)] if c.placement_strategy == "STRICT_PACK" else learner
        items += [sum(rollout)] if c.rollout_strategy == "STRICT_PACK" else rollout
    for service in (cfg.judge.scaling, cfg.consistency.scaling):
        replicas = service.min_replicas if scale == "min" else service.max_replicas
        items += [service.num_gpus] * replicas
    return [g for g in items if g > 0]


def nodes_needed(cfg: Config, scale: str = "min") -> int:
    """First-fit decreasing of the indivisible GPU amounts into nodes of gpus_per_node GPUs."""
    capacity = cfg.cluster.gpus_per_node
    free: list[float] = []
    for item in sorted(_group_items(cfg, scale), reverse=True):
        for i, room in enumerate(free):
            if item <= room + 1e-9:
                free[i] -= item
                break
        else:
            free.append(capacity - item)
    return len(free)


def total_gpus(cfg: Config, scale: str = "min") -> float:
    return sum(_group_items(cfg, scale))


def placement_checks(cfg: Config, max_nodes: int | None = None) -> list[PlacementCheck]:
    c, lc, r = cfg.cluster, cfg.learner, cfg.rollout
    per_node = c.gpus_per_node
    checks: list[PlacementCheck] = []

    def group(role: str, strategy: str, bundle_gpus: float, count: int) -> None:
        need = bundle_gpus * count
        if bundle_gpus > per_node:
            checks.append(PlacementCheck(role, False, f"one bundle asks {bundle_gpus:g} GPUs, a node has {per_node}"))
        elif strategy == "STRICT_PACK" and need > per_node:
            checks.append(PlacementCheck(role, False, f"STRICT_PACK puts all {count} bundles ({need:g} GPUs) on one "
                                                      f"node of {per_node} GPUs"))
        else:
            checks.append(PlacementCheck(role, True, f"{count} bundles x {bundle_gpus:g} GPU, {strategy}: "
                                                     f"{need:g} GPUs"))

    if c.colocate_rollout_and_learner:
        group("learner rank + rollout worker", c.placement_strategy, lc.num_gpus_per_rank + c.rollout_num_gpus,
              max(lc.num_ranks, r.num_workers))
    else:
        group("learner rank", c.placement_strategy, lc.num_gpus_per_rank, lc.num_ranks)
        group("rollout worker", c.rollout_strategy, c.rollout_num_gpus, r.num_workers)
    for role, service in (("judge replica", cfg.judge.scaling), ("CC replica", cfg.consistency.scaling)):
        group(role, "PACK", service.num_gpus, service.min_replicas)
    low, high = nodes_needed(cfg, "min"), nodes_needed(cfg, "max")
    if max_nodes is not None and low > max_nodes:
        checks.append(PlacementCheck("cluster", False, f"needs {low} nodes at the services' minimum scale "
                                                       f"({total_gpus(cfg, 'min'):g} GPUs), --max-nodes {max_nodes}"))
    else:
        checks.append(PlacementCheck("cluster", True, f"{low} nodes of {per_node} GPUs at minimum scale "
                                                      f"({total_gpus(cfg, 'min'):g} GPUs), {high} at maximum "
                                                      f"({total_gpus(cfg, 'max'):g} GPUs)"))
    return checks

