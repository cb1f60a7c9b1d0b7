"""One step's rollouts and scoring, with retries of lost work (the driver's data plane).

``launch`` sends the step's chains to the rollout workers (``chains_per_request`` chains per
call, round-robin) and returns at once, so the driver can train the previous step meanwhile
(asynchronous mode). ``collect`` waits for the rollouts; as each call's small metadata arrives
it registers the trajectories with the buffer's ``GroupAssembler`` and sends one request per
trajectory to the judge and the consistency services (their replicas batch them); then it
gathers the scores into the assembler and returns the complete groups.

Faults (actors.resend): a rollout call whose worker died is sent again, with the same seed and
weights, so it reproduces the same trajectories, to the first worker that answers a ping (a dead
one is restarted by Ray in its own placement-group bundle, and waited for when it is the only
one); a call refused because its worker was restarting does not count as an attempt. After
``max_attempts`` lost attempts the step fails loudly with the last error. Scoring requests whose
replica died are resent all at once; a request that stays lost, or that the scorer rejects on its
own, drops its trajectory's group with the counted reason ``SCORING_FAILED``. The assembler
ignores (and counts) any duplicate delivery, so no trajectory is counted twice or lost.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.resend import ScoringFailure, live_worker, resolve_scores
from actors.rollout_worker import ChainInput, RolloutRequest, TrajectoryMeta, num_outputs
from actors.scoring_services import ConsistencyItem, JudgeItem
from edit_rl.buffer import DroppedGroup, GroupAssembler, Rollout, TrajectoryGroup
from edit_rl.config import Config

log = logging.getLogger(__name__)

SCORING_FAILED = "scoring failed"  # DroppedGroup.reason of a group with a trajectory that could not be scored
WORKER_RESTART_TIMEOUT_S = 900.0  # how long a lost rollout call waits for a worker to answer (restart + model load)
SCORE_TIMEOUT_S = 600.0


def rollout_seed(base_seed: int, step: int, chain_id: str) -> int:
    """A chain's sampling seed: fixed by (run seed, step, chain), whichever worker runs it."""
    return (base_seed * 1_000_003 + step * 7919 + zlib.crc32(chain_id.encode())) % (2**31 - 1)


@dataclass
class _Call:
    request: RolloutRequest
    refs: list  # [meta, images, *payloads]
    attempt: int = 1


@dataclass
class PendingStep:
    step: int
    calls: list[_Call]
    turn_specs: dict[str, tuple]  # chain_id -> consistency TurnSpec per turn
    launched_at: float = field(default_factory=time.perf_counter)


@dataclass
class StepOutcome:
    groups: list[TrajectoryGroup]
    timing: dict[str, float]
    retries: Counter
    num_images: int
    images: dict[str, tuple]  # rollout_id -> (ObjectRef of list[TrajectoryImages], index): for sample grids
    dropped: list[DroppedGroup] = field(default_factory=list)  # groups with a trajectory that could not be scored


class RolloutDispatcher:
    def __init__(self, cfg: Config, workers: list, judge, consistency, max_attempts: int = 4):
        self.cfg = cfg
        self.workers = workers
        self.judge = judge
        self.consistency = consistency
        self.max_attempts = max_attempts
        self._next_worker = 0

    def _submit(self, call: _Call, worker_index: int | None = None) -> None:
        if worker_index is None:
            worker_index = self._next_worker % len(self.workers)
            self._next_worker += 1
        worker = self.workers[worker_index]
        call.refs = list(worker.rollout.options(num_returns=num_outputs(call.request)).remote(call.request))

    def launch(self, step: int, chains: list[tuple[ChainInput, tuple]], weights_version: int,
               weights_ref, assembler: GroupAssembler) -> PendingStep:
        """Send ``chains`` ((ChainInput, consistency turn specs) pairs) out; returns at once."""
        assembler.expect(step, [c.chain_id for c, _ in chains])
        per_call = self.cfg.rollout.chains_per_request
        calls = []
        for start in range(0, len(chains), per_call):
            batch = tuple(c for c, _ in chains[start:start + per_call])
            seed = rollout_seed(self.cfg.trainer.seed, step, batch[0].chain_id)
            request = RolloutRequest(step, batch, self.cfg.rollout.group_size, seed, weights_version, [weights_ref])
            call = _Call(request, [])
            self._submit(call)
            calls.append(call)
        return PendingStep(step, calls, {c.chain_id: specs for c, specs in chains})

    def collect(self, pending: PendingStep, assembler: GroupAssembler) -> StepOutcome:
        retries: Counter = Counter()
        images: dict[str, tuple] = {}
        scoring: list[tuple[str, str, object, object]] = []  # (kind, rollout_id, item, response)
        waiting = {call.refs[0]: call for call in pending.calls}
        rollout_done = None
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            call = waiting.pop(ready[0])
            try:
                metas: list[TrajectoryMeta] = ray.get(ready[0])
            except RayActorError as err:
                self._retry(call, err, retries, "rollout")
                waiting[call.refs[0]] = call
                continue
            images_ref, payloads = call.refs[1], call.refs[2:]
            turns = len(call.request.chains[0].instructions)
            for i, meta in enumerate(metas):
                record = Rollout(meta.rollout_id, meta.chain_id, meta.slot, meta.step, meta.policy_version,
                                 tuple(payloads[i * turns:(i + 1) * turns]))
                if not assembler.add_rollout(record):
                    continue
                images[meta.rollout_id] = (images_ref, i)  # a duplicate: its scores are already on their way
                instructions = call.request.chains[(i // call.request.group_size)].instructions
                judge_item = JudgeItem([images_ref], i, instructions)
                cc_item = ConsistencyItem([images_ref], i, pending.turn_specs[meta.chain_id])
                scoring.append(("judge", meta.rollout_id, judge_item, self.judge.remote(judge_item)))
                scoring.append(("consistency", meta.rollout_id, cc_item, self.consistency.remote(cc_item)))
        rollout_done = time.perf_counter()
        by_kind = {kind: [s for s in scoring if s[0] == kind] for kind in ("judge", "consistency")}
        # One thread per service waits for its own results, so each service's time is its own (read
        # in one submission-ordered loop, both came out as the slower one's).
        with ThreadPoolExecutor(max_workers=len(by_kind)) as pool:
            futures = {kind: pool.submit(self._score_all, kind, entries, retries) for kind, entries in by_kind.items()}
            resolved = {kind: future.result() for kind, future in futures.items()}
        done_at = {}
        for kind, (results, done_at[kind]) in resolved.items():
            add = assembler.add_if_scores if kind == "judge" else assembler.add_cc_scores
            for (_, rollout_id, _, _), scores in zip(by_kind[kind], results):
                if isinstance(scores, ScoringFailure):
                    log.error("%s of %s given up (%s): %s", kind, rollout_id, scores.reason, scores.detail)
                    continue
                add(rollout_id, scores.values, fallback=scores.fallback)
        done_at = {kind: rollout_done if t is None else t for kind, t in done_at.items()}
        groups = assembler.pop_ready()
        dropped = assembler.drop_incomplete(SCORING_FAILED, step=pending.step)
        num_turn_images = sum(len(g.trajectories) for g in groups) * self.cfg.rollout.num_turns
        timing = {"rollout": rollout_done - pending.launched_at,
                  "judge": done_at["judge"] - rollout_done,
                  "consistency": done_at["consistency"] - rollout_done}
        return StepOutcome(groups, timing, retries, num_turn_images, images, dropped)

    def _retry(self, call: _Call, err: Exception, retries: Counter, kind: str) -> None:
        """Send a lost call again to a live worker. A call refused by a restarting worker never ran
        and does not count as an attempt (live_worker's timeout bounds the waiting)."""
        refused = isinstance(err, ActorUnavailableError)
        if not refused and call.attempt >= self.max_attempts:
            raise RuntimeError(f"{kind} for step {call.request.step} chains "
                               f"{[c.chain_id for c in call.request.chains]} failed {call.attempt} times") from err
        retries[kind] += 1
        call.attempt += 0 if refused else 1
        log.warning("%s call lost (%s: %s); waiting for a live worker, then retrying (attempt %d)", kind,
                    type(err).__name__, str(err).splitlines()[0] if str(err) else "", call.attempt)
        self._submit(call, live_worker(self.workers, self._next_worker, WORKER_RESTART_TIMEOUT_S))

    def _score_all(self, kind: str, entries: list, retries: Counter) -> tuple[list, float | None]:
        """One service's results (ServiceTurnScores, or ScoringFailure for a request given up) in submission
        order, and when the last one arrived (None: none asked)."""
        handle = self.judge if kind == "judge" else self.consistency
        results = resolve_scores(handle, kind, [e[2] for e in entries], [e[3] for e in entries], retries,
                                 self.max_attempts, SCORE_TIMEOUT_S)
        return results, (time.perf_counter() if entries else None)
