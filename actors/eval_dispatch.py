"""Evaluation's data plane: rollout requests -> rollout workers -> the judge and consistency
services, one scoring request per trajectory, with retries of lost work.

Unlike training's ``RolloutDispatcher`` there are no steps or groups: requests go round-robin to
the workers, a few in flight per worker, their chains edited with the evaluation
sampler (``RolloutRequest.evaluation``) and a seed fixed by the request, and each trajectory is
scored as soon as its rollout call returns. A rollout call whose worker died is sent again to the
next worker (same seed and weights: the same images; Ray restarts the dead one in its own
placement-group bundle, see ``actors.rollout_worker.start_rollout_workers``); a scoring request
whose replica died is sent again. Results come back in request order, each with its images'
ObjectRef so the driver fetches only the images it draws.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors.rollout_worker import RolloutRequest, TrajectoryMeta
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

    def _submit(self, request: RolloutRequest) -> list:
        worker = self.workers[self._next_worker % len(self.workers)]
        self._next_worker += 1
        return list(worker.rollout.options(num_returns=2).remote(request))

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
                if attempts[i] >= self.max_attempts:
                    raise RuntimeError(f"evaluation rollout of {[c.chain_id for c in request.rollout.chains]} "
                                       f"failed {attempts[i]} times") from err
                attempts[i] += 1
                log.warning("rollout call lost (%s); retrying (attempt %d)", type(err).__name__, attempts[i])
                refs = self._submit(request.rollout)
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
        out = []
        for done, s in enumerate(flat, start=1):
            out.append(ScoredEvalChain(s.chain_id, [s.images], s.index,
                                        self._result(self.judge, s.judge_response, s.judge_item),
                                        self._result(self.consistency, s.cc_response, s.cc_item)))
            if done == len(flat) or done % max(50, len(flat) // 10) == 0:
                log.info("scored %d / %d trajectories", done, len(flat))
        return out

    def _result(self, handle, response, item) -> ServiceTurnScores:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return response.result(timeout_s=SCORE_TIMEOUT_S)
            except GetTimeoutError:
                raise
            except Exception as err:  # a replica died mid-request (Serve restarts it)
                if attempt == self.max_attempts:
                    raise RuntimeError(f"scoring request failed {attempt} times") from err
                log.warning("scoring request lost (%s); retrying (attempt %d)", type(err).__name__, attempt + 1)
                time.sleep(min(2.0 * attempt, 10.0))
                response = handle.remote(item)
        raise AssertionError("unreachable")
