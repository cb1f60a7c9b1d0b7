"""The records the trajectory buffer passes around: one rollout, one service's per-turn scores,
a scored trajectory, a complete group, and a dropped group with its reason.

Payloads (each turn's image / latents and condition) are opaque handles: Ray ObjectRefs on the
cluster, anything in tests. Nothing here looks inside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Rollout:
    """One T-turn trajectory as a rollout worker delivers it.

    ``rollout_id`` is unique over the run and chosen by the driver when it asks for the
    rollout (a retried task re-delivers the same id). ``chain_id`` names the instruction chain
    (the prompt; the ban list works on it), ``slot`` is the trajectory's place g in [0, G) of
    its group, ``step`` the driver step that asked for it, ``policy_version`` the version of the
    weights that sampled it (staleness = current version - policy_version). ``payloads[k]`` is
    the handle of turn k.
    """

    rollout_id: str
    chain_id: str
    slot: int
    step: int
    policy_version: int
    payloads: tuple[Any, ...]


@dataclass(frozen=True)
class TurnScores:
    """One scoring service's per-turn scores of one trajectory, (T,), with the service's
    per-turn flag saying that a score is a fallback (the real score was missing)."""

    values: tuple[float, ...]
    fallback: tuple[bool, ...]

    @property
    def num_fallbacks(self) -> int:
        return sum(self.fallback)

    @property
    def all_finite(self) -> bool:
        return all(math.isfinite(v) for v in self.values)


@dataclass(frozen=True)
class ScoredTrajectory:
    """A rollout with both its per-turn IF (judge) and CC (consistency) scores."""

    rollout: Rollout
    if_scores: TurnScores
    cc_scores: TurnScores


@dataclass(frozen=True)
class TrajectoryGroup:
    """The G scored trajectories of one chain at one step, ordered by slot (0 .. G-1)."""

    step: int
    chain_id: str
    trajectories: tuple[ScoredTrajectory, ...]


@dataclass(frozen=True)
class DroppedGroup:
    """A group that will not train, and why.

    ``reason`` is short and stable (for counting): "nan score", the filter's reasons, or the
    reason a caller gave :meth:`GroupAssembler.drop_incomplete`. ``detail`` says more.
    ``mu`` / ``sigma``: the group's mean and population std of raw trajectory IF, when known.
    """

    step: int
    chain_id: str
    reason: str
    detail: str = ""
    mu: Optional[float] = None
    sigma: Optional[float] = None
