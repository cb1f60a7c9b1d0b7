"""Evaluation's data plane: rollout requests -> rollout workers -> the judge and consistency
services, one scoring request per trajectory, with retries of lost work.

Unlike training's ``RolloutDispatcher`` there are no steps or groups: requests go round-robin to
the workers, a few in flight per worker, their chains edited with the evaluation
sampler (``RolloutRequest.evaluation``) and a seed fixed by the request, and each trajectory is
scored as soon as its rollout call returns. A rollout call whose worker died is sent again to the
first worker that answers a ping (same seed and weights: the same images; Ray restarts the dead
one in its own placement-group bundle, see ``actors.rollout_worker.start_rollout_workers``);
scoring requests whose replica died are resent all at once (actors.resend), and a trajectory
that still cannot be scored fails the evaluation naming its chain. Results come back in request
order, each with its images' ObjectRef so the driver fetches only the images it draws.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.resend import ScoringFailure, live_worker, resolve_scores
from actors.rollout_worker import RolloutRequest, TrajectoryMeta, num_outputs
from actors.scoring_services import ConsistencyItem, JudgeItem, ServiceTurnScores

log = logging.getLogger(__name__)
SCORE_TIMEOUT_S = 1800
IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class EvalRequest:
    """A rollout request and the consistency turn specs of each of its chains (in order)."""

    rollout: RolloutRequest
    turn_specs: tuple[tuple, ...]


@dataclass(frozen=True)
class ScoredEvalChain:
    """One chain's edited images (``images[0]`` is an ObjectRef of the call's list of
    TrajectoryImages, ``index`` its position) and their per-turn judge and consistency scores."""

    chain_id: str
    images: list
    index: int
    judge: ServiceTurnScores
    consistency: ServiceTurnScores


@dataclass
class _Scoring:
    """A trajectory's scoring requests in flight (kept to resend them)."""

    chain_id: str
    images: object  # ObjectRef of the call's list[TrajectoryImages]
    index: int
    judge_item: JudgeItem
    cc_item: ConsistencyItem
    judge_response: object
    cc_response: object


class EvalDispatcher:
    def __init__(self, workers: list, judge, consistency, max_attempts: int = 4):
        self.workers = workers
        self.judge = judge
        self.consistency = consistency
        self.max_attempts = max_attempts
        self._next_worker = 0

    def _submit(self, request: RolloutRequest, worker_index: int | None = None) -> list:
        if worker_index is None:
            worker_index = self._next_worker % len(self.workers)
            self._next_worker += 1
        worker = self.workers[worker_index]
        return list(worker.rollout.options(num_returns=num_outputs(request)).remote(request))

    def run(self, requests: Sequence[EvalRequest]) -> list[ScoredEvalChain]:
        """Roll out and score every request; the trajectories in request order. At most
        ``IN_FLIGHT_PER_WORKER`` rollout calls per worker are outstanding (their inputs live in
        the object store meanwhile)."""
        attempts = [1] * len(requests)
        waiting: dict = {}
        queue = list(range(len(requests)))[::-1]
        scoring: dict[int, list[_Scoring]] = {}
        while waiting or queue:
            while queue and len(waiting) < IN_FLIGHT_PER_WORKER * len(self.workers):
                i = queue.pop()
                refs = self._submit(requests[i].rollout)
                waiting[refs[0]] = (i, refs)
            ready, _ = ray.wait(list(waiting), num_returns=1)
            i, refs = waiting.pop(ready[0])
            request = requests[i]
            try:
                metas: list[TrajectoryMeta] = ray.get(ready[0])
            except RayActorError as err:
                refused = isinstance(err, ActorUnavailableError)  # its worker was restarting: it never ran
                if not refused and attempts[i] >= self.max_attempts:
                    raise RuntimeError(f"evaluation rollout of {[c.chain_id for c in request.rollout.chains]} "
                                       f"failed {attempts[i]} times") from err
                attempts[i] += 0 if refused else 1
                log.warning("rollout call lost (%s); retrying (attempt %d)", type(err).__name__, attempts[i])
                refs = self._submit(request.rollout, live_worker(self.workers, self._next_worker, SCORE_TIMEOUT_S))
                waiting[refs[0]] = (i, refs)
                continue
            scoring[i] = []
            for j, meta in enumerate(metas):
                c = j // request.rollout.group_size
                judge_item = JudgeItem([refs[1]], j, request.rollout.chains[c].instructions)
                cc_item = ConsistencyItem([refs[1]], j, request.turn_specs[c])
                scoring[i].append(_Scoring(meta.chain_id, refs[1], j, judge_item, cc_item,
                                           self.judge.remote(judge_item), self.consistency.remote(cc_item)))
        flat = [s for i in sorted(scoring) for s in scoring[i]]
        retries: Counter = Counter()
        judged = resolve_scores(self.judge, "judge", [s.judge_item for s in flat], [s.judge_response for s in flat],
                                retries, self.max_attempts, SCORE_TIMEOUT_S)
        log.info("judged %d trajectories", len(flat))
        measured = resolve_scores(self.consistency, "consistency", [s.cc_item for s in flat],
                                  [s.cc_response for s in flat], retries, self.max_attempts, SCORE_TIMEOUT_S)
        out = []
        for s, judge, cc in zip(flat, judged, measured):
            for kind, scores in (("judge", judge), ("consistency", cc)):
                if isinstance(scores, ScoringFailure):
                    raise RuntimeError(f"evaluation: the {kind} request of chain {s.chain_id!r} (trajectory "
                                       f"{s.index}) {scores.reason}: {scores.detail}")
            out.append(ScoredEvalChain(s.chain_id, [s.images], s.index, judge, cc))
        return out
