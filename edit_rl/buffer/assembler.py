"""GroupAssembler: collects rollouts and their IF / CC scores, which arrive in any order from
rollout workers and two scoring services, into complete groups of G scored trajectories.

Delivery is at-least-once (a retried task whose first attempt also finished delivers twice), so
every ``add_*`` is idempotent: a second delivery of the same rollout_id, or of the same kind of
scores for it, is ignored (first delivery wins) and counted, never double-counted. The ``add_*``
methods return True when the delivery was taken, False when it was ignored; the driver should
send to the scoring services only a rollout whose ``add_rollout`` returned True, so that the
scores always describe the payload the group keeps.

Deliveries for a group already popped or dropped (a straggler) are ignored and counted as late
while the group's step is within ``late_window_steps`` of the newest expected step; after that
its ids are forgotten (the state stays bounded) and a delivery for them raises like any unknown
id. Scores for a rollout_id never added raise :class:`UnknownRolloutError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from edit_rl.buffer.records import DroppedGroup, Rollout, ScoredTrajectory, TrajectoryGroup, TurnScores

logger = logging.getLogger(__name__)

GroupKey = tuple[int, str]  # (step, chain_id)

_STATE_VERSION = 1


class UnknownRolloutError(LookupError):
    """Scores arrived for a rollout_id the assembler never received (or forgot long ago)."""


@dataclass
class AssemblerCounters:
    """What the assembler ignored or gave up on since the run began (persisted in the state)."""

    duplicate_rollouts: int = 0
    duplicate_if_scores: int = 0
    duplicate_cc_scores: int = 0
    late_deliveries: int = 0
    completed_groups: int = 0
    dropped_groups: int = 0


@dataclass
class _PendingGroup:
    step: int
    chain_id: str
    rollouts: dict[int, Rollout] = field(default_factory=dict)  # slot -> rollout
    if_scores: dict[int, TurnScores] = field(default_factory=dict)
    cc_scores: dict[int, TurnScores] = field(default_factory=dict)

    def is_complete(self, group_size: int) -> bool:
        return len(self.rollouts) == len(self.if_scores) == len(self.cc_scores) == group_size


class GroupAssembler:
    """Assembles, per step, the expected chains' groups of ``group_size`` trajectories of
    ``num_turns`` turns each; see the module docstring for the delivery rules."""

    def __init__(self, group_size: int, num_turns: int, *, late_window_steps: int = 2) -> None:
        if group_size < 1 or num_turns < 1:
            raise ValueError(f"group_size and num_turns must be >= 1, got {group_size}, {num_turns}")
        if late_window_steps < 0:
            raise ValueError(f"late_window_steps must be >= 0, got {late_window_steps}")
        self.group_size = group_size
        self.num_turns = num_turns
        self.late_window_steps = late_window_steps
        self.counters = AssemblerCounters()
        self._groups: dict[GroupKey, _PendingGroup] = {}  # in the order they were expected
        self._index: dict[str, tuple[GroupKey, int]] = {}  # pending rollout_id -> (group, slot)
        self._retired_groups: dict[GroupKey, None] = {}
        self._retired_ids: dict[str, int] = {}  # rollout_id -> step
        self._newest_step: Optional[int] = None

    # ------------------------------------------------------------------ expectations
    def expect(self, step: int, chain_ids: Sequence[str]) -> None:
        """Announce that ``step`` will deliver one group of G trajectories for each chain."""
        if len(set(chain_ids)) != len(chain_ids):
            raise ValueError(f"step {step}: chain_ids repeat a chain: {list(chain_ids)}")
        for chain_id in chain_ids:
            key = (step, chain_id)
            if key in self._groups or key in self._retired_groups:
                raise ValueError(f"group (step {step}, chain {chain_id!r}) was already expected")
        for chain_id in chain_ids:
            self._groups[(step, chain_id)] = _PendingGroup(step, chain_id)
        if self._newest_step is None or step > self._newest_step:
            self._newest_step = step
            self._forget_old_retired()

    @property
    def num_pending(self) -> int:
        """Groups expected and neither popped nor dropped yet."""
        return len(self._groups)

    # ------------------------------------------------------------------ deliveries
    def add_rollout(self, rollout: Rollout) -> bool:
        """Take a rollout from a worker. False (and counted) for a duplicate or late delivery."""
        rid = rollout.rollout_id
        key = (rollout.step, rollout.chain_id)
        if rid in self._index:
            self.counters.duplicate_rollouts += 1
            logger.info("ignored duplicate rollout %r", rid)
            return False
        if rid in self._retired_ids or key in self._retired_groups:
            self.counters.late_deliveries += 1
            logger.info("ignored late rollout %r of retired group %s", rid, key)
            return False
        group = self._groups.get(key)
        if group is None:
            raise ValueError(f"rollout {rid!r}: no group (step {rollout.step}, chain {rollout.chain_id!r}) "
                             "is expected; call expect() first")
        if not 0 <= rollout.slot < self.group_size:
            raise ValueError(f"rollout {rid!r}: slot {rollout.slot} outside [0, {self.group_size})")
        if len(rollout.payloads) != self.num_turns:
            raise ValueError(f"rollout {rid!r}: {len(rollout.payloads)} payloads for {self.num_turns} turns")
        holder = group.rollouts.get(rollout.slot)
        if holder is not None:
            raise ValueError(f"rollout {rid!r}: slot {rollout.slot} of group {key} already holds "
                             f"rollout {holder.rollout_id!r}")
        group.rollouts[rollout.slot] = rollout
        self._index[rid] = (key, rollout.slot)
        return True

    def add_if_scores(self, rollout_id: str, values: Sequence[float],
                      fallback: Optional[Sequence[bool]] = None) -> bool:
        """Take the judge's per-turn IF scores (T,) and fallback flags (default: none)."""
        return self._add_scores("if", rollout_id, values, fallback)

    def add_cc_scores(self, rollout_id: str, values: Sequence[float],
                      fallback: Optional[Sequence[bool]] = None) -> bool:
        """Take the consistency scorer's per-turn CC scores (T,) and fallback flags."""
        return self._add_scores("cc", rollout_id, values, fallback)

    def _add_scores(self, kind: str, rollout_id: str, values: Sequence[float],
                    fallback: Optional[Sequence[bool]]) -> bool:
        scores = TurnScores(tuple(float(v) for v in values),
                            tuple(bool(f) for f in fallback) if fallback is not None else (False,) * len(values))
        if len(scores.values) != self.num_turns or len(scores.fallback) != self.num_turns:
            raise ValueError(f"{kind} scores of {rollout_id!r}: {len(scores.values)} values and "
                             f"{len(scores.fallback)} fallback flags for {self.num_turns} turns")
        where = self._index.get(rollout_id)
        if where is None:
            if rollout_id in self._retired_ids:
                self.counters.late_deliveries += 1
                logger.info("ignored late %s scores of retired rollout %r", kind, rollout_id)
                return False
            raise UnknownRolloutError(f"{kind} scores for unknown rollout_id {rollout_id!r}: no rollout with "
                                      "this id was added (or it was retired more than "
                                      f"{self.late_window_steps} steps ago)")
        key, slot = where
        store = self._groups[key].if_scores if kind == "if" else self._groups[key].cc_scores
        if slot in store:
            if kind == "if":
                self.counters.duplicate_if_scores += 1
            else:
                self.counters.duplicate_cc_scores += 1
            logger.info("ignored duplicate %s scores of rollout %r", kind, rollout_id)
            return False
        store[slot] = scores
        return True

    # ------------------------------------------------------------------ completion
    def pop_ready(self) -> list[TrajectoryGroup]:
        """Remove and return every complete group (G rollouts, each with IF and CC scores), in
        the order the groups were expected; trajectories ordered by slot."""
        ready = [key for key, g in self._groups.items() if g.is_complete(self.group_size)]
        out = []
        for key in ready:
            g = self._retire(key)
            out.append(TrajectoryGroup(g.step, g.chain_id, tuple(
                ScoredTrajectory(g.rollouts[s], g.if_scores[s], g.cc_scores[s]) for s in range(self.group_size))))
        self.counters.completed_groups += len(out)
        return out

    def drop_incomplete(self, reason: str, *, step: Optional[int] = None) -> list[DroppedGroup]:
        """Give up on every incomplete pending group (of ``step`` only, if given), logging each
        with ``reason``. Complete groups stay for :meth:`pop_ready`."""
        dropped = []
        for key, g in list(self._groups.items()):
            if (step is not None and g.step != step) or g.is_complete(self.group_size):
                continue
            self._retire(key)
            detail = (f"{len(g.rollouts)}/{self.group_size} rollouts, {len(g.if_scores)} IF, "
                      f"{len(g.cc_scores)} CC scored")
            logger.warning("dropped group (step %d, chain %r): %s (%s)", g.step, g.chain_id, reason, detail)
            dropped.append(DroppedGroup(g.step, g.chain_id, reason, detail))
        self.counters.dropped_groups += len(dropped)
        return dropped

    def _retire(self, key: GroupKey) -> _PendingGroup:
        g = self._groups.pop(key)
        self._retired_groups[key] = None
        for r in g.rollouts.values():
            del self._index[r.rollout_id]
            self._retired_ids[r.rollout_id] = g.step
        return g

    def _forget_old_retired(self) -> None:
        assert self._newest_step is not None
        oldest_kept = self._newest_step - self.late_window_steps
        self._retired_groups = {k: None for k in self._retired_groups if k[0] >= oldest_kept}
        self._retired_ids = {r: s for r, s in self._retired_ids.items() if s >= oldest_kept}

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, as JSON-able values (non-finite scores are
        written as the strings "nan" / "inf" / "-inf"). Payload handles are stored as they are:
        the state is JSON-able when they are (the Ray wrapper decides what a handle persists as)."""
        pending = []
        for g in self._groups.values():
            trajs = []
            for slot, r in sorted(g.rollouts.items()):
                rollout = {"rollout_id": r.rollout_id, "chain_id": r.chain_id, "slot": r.slot, "step": r.step,
                           "policy_version": r.policy_version, "payloads": list(r.payloads)}  # handles not copied
                trajs.append({"rollout": rollout,
                              "if": _scores_to_json(g.if_scores.get(slot)),
                              "cc": _scores_to_json(g.cc_scores.get(slot))})
            pending.append({"step": g.step, "chain_id": g.chain_id, "trajectories": trajs})
        return {
            "version": _STATE_VERSION,
            "group_size": self.group_size,
            "num_turns": self.num_turns,
            "late_window_steps": self.late_window_steps,
            "newest_step": self._newest_step,
            "counters": asdict(self.counters),
            "pending": pending,
            "retired_groups": [[s, c] for s, c in self._retired_groups],
            "retired_ids": [[r, s] for r, s in self._retired_ids.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace this assembler's state with one from :meth:`state_dict` (same G and T)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported assembler state version {state.get('version')!r}")
        if (state["group_size"], state["num_turns"]) != (self.group_size, self.num_turns):
            raise ValueError(f"state is for G={state['group_size']}, T={state['num_turns']}; this assembler "
                             f"has G={self.group_size}, T={self.num_turns}")
        self.late_window_steps = state["late_window_steps"]
        self._newest_step = state["newest_step"]
        self.counters = AssemblerCounters(**state["counters"])
        self._groups, self._index = {}, {}
        for p in state["pending"]:
            key = (p["step"], p["chain_id"])
            g = self._groups[key] = _PendingGroup(p["step"], p["chain_id"])
            for t in p["trajectories"]:
                r = Rollout(**{**t["rollout"], "payloads": tuple(t["rollout"]["payloads"])})
                g.rollouts[r.slot] = r
                self._index[r.rollout_id] = (key, r.slot)
                for store, data in ((g.if_scores, t["if"]), (g.cc_scores, t["cc"])):
                    if data is not None:
                        store[r.slot] = _scores_from_json(data)
        self._retired_groups = {(s, c): None for s, c in state["retired_groups"]}
        self._retired_ids = {r: s for r, s in state["retired_ids"]}


def _scores_to_json(scores: Optional[TurnScores]) -> Optional[dict[str, list]]:
    if scores is None:
        return None
    return {"values": [v if math.isfinite(v) else str(v) for v in scores.values],
            "fallback": list(scores.fallback)}


def _scores_from_json(data: dict[str, list]) -> TurnScores:
    return TurnScores(tuple(float(v) for v in data["values"]), tuple(bool(f) for f in data["fallback"]))
