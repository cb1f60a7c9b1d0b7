"""One step's rollouts and scoring, with retries of lost work (the driver's data plane).

``launch`` sends the step's chains to the rollout workers (``chains_per_request`` chains per
call, round-robin) and returns at once, so the driver can train the previous step meanwhile
(asynchronous mode). ``collect`` waits for the rollouts; as each call's small metadata arrives
it registers the trajectories with the buffer's ``GroupAssembler`` and sends one request per
trajectory to the judge and the consistency services (their replicas batch them); then it
gathers the scores into the assembler and returns the complete groups.

Faults: a rollout call whose worker died is sent again (to the next worker; the dead one is
restarted by Ray, in its own placement-group bundle) with the same seed and weights, so it reproduces the same trajectories; a
scoring request whose replica died is sent again. The assembler ignores (and counts) any
duplicate delivery, so no trajectory is counted twice or lost. After ``max_attempts`` the step
fails loudly with the last error.
"""
from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from actors.rollout_worker import ChainInput, RolloutRequest, TrajectoryMeta
from actors.scoring_services import ConsistencyItem, JudgeItem, ServiceTurnScores
from edit_rl.buffer import GroupAssembler, Rollout, TrajectoryGroup
from edit_rl.config import Config

log = logging.getLogger(__name__)


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


class RolloutDispatcher:
    def __init__(self, cfg: Config, workers: list, judge, consistency, max_attempts: int = 4):
        self.cfg = cfg
        self.workers = workers
        self.judge = judge
        self.consistency = consistency
        self.max_attempts = max_attempts
        self._next_worker = 0

    def _submit(self, call: _Call) -> None:
        worker = self.workers[self._next_worker % len(self.workers)]
        self._next_worker += 1
        turns = len(call.request.chains[0].instructions)
        n = 2 + len(call.request.chains) * call.request.group_size * turns
        call.refs = list(worker.rollout.options(num_returns=n).remote(call.request))

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
                add(rollout_id, scores.values, fallback=scores.fallback)
        done_at = {kind: rollout_done if t is None else t for kind, t in done_at.items()}
        groups = assembler.pop_ready()
        num_turn_images = sum(len(g.trajectories) for g in groups) * self.cfg.rollout.num_turns
        timing = {"rollout": rollout_done - pending.launched_at,
                  "judge": done_at["judge"] - rollout_done,
                  "consistency": done_at["consistency"] - rollout_done}
        return StepOutcome(groups, timing, retries, num_turn_images, images)

    def _retry(self, call: _Call, err: Exception, retries: Counter, kind: str) -> None:
        if call.attempt >= self.max_attempts:
            raise RuntimeError(f"{kind} for step {call.request.step} chains "
                               f"{[c.chain_id for c in call.request.chains]} failed {call.attempt} times") from err
        retries[kind] += 1
        call.attempt += 1
        log.warning("%s call lost (%s: %s); retrying (attempt %d)", kind, type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "", call.attempt)
        self._submit(call)

    def _score_all(self, kind: str, entries: list, retries: Counter) -> tuple[list[ServiceTurnScores], float | None]:
        """One service's results in submission order, and when the last one arrived (None: none asked)."""
        results = [self._score_result(kind, item, response, retries) for _, _, item, response in entries]
        return results, (time.perf_counter() if entries else None)

    def _score_result(self, kind: str, item, response, retries: Counter) -> ServiceTurnScores:
        handle = self.judge if kind == "judge" else self.consistency
        for attempt in range(1, self.max_attempts + 1):
            try:
                return response.result(timeout_s=600)
            except GetTimeoutError:
                raise
            except Exception as err:  # a replica died mid-request (Serve restarts it)
                if attempt == self.max_attempts:
                    raise RuntimeError(f"{kind} request failed {attempt} times") from err
                retries[kind] += 1
                log.warning("%s request lost (%s); retrying (attempt %d)", kind, type(err).__name__, attempt + 1)
                time.sleep(min(2.0 * attempt, 10.0))
                response = handle.remote(item)
        raise AssertionError("unreachable")
