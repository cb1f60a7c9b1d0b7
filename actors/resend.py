"""Resending lost work: waiting for a live rollout worker, and resolving scoring requests with
every lost one resent at once.

A rollout worker that dies is restarted by Ray (``cluster.max_restarts``); while it restarts, a
call sent to it fails at once ("The actor is restarting"). ``live_worker`` therefore waits until a
worker answers a ping (the first of them, starting from a preferred one) before a lost call is
sent again, so a restart costs one retry and the restart's seconds, not the call's attempts.

A scoring request fails in one of two ways, told apart by the exception:

* its replica died (``RayActorError``, which covers ``ActorDiedError`` and
  ``ActorUnavailableError``, or Serve's ``ReplicaUnavailableError``): the request is *lost* and is
  resent; every request lost in one round is resent at once, after one short pause that lets
  Serve route away from the dead replica, for at most ``max_attempts`` rounds;
* the scorer raised (any other exception): a *bad request*. Serve batches requests, so one bad
  item fails its whole batch; each such request is sent once more on its own, and if it fails
  alone it is not retried again.

A request that is still lost after its rounds, or bad alone, resolves to ``ScoringFailure`` (the
caller drops its trajectory's group with a counted, logged reason) instead of failing the run.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from ray.serve.exceptions import ReplicaUnavailableError

log = logging.getLogger(__name__)

LOST = "lost"  # ScoringFailure.reason: the replica died on every attempt
BAD_REQUEST = "scorer error"  # ScoringFailure.reason: the scorer raised on this request alone


def replica_died(err: BaseException) -> bool:
    """Whether ``err`` means the actor or replica serving a call died (the call is worth resending),
    as opposed to an exception raised by the code it ran."""
    return isinstance(err, (RayActorError, ReplicaUnavailableError))


def live_worker(workers: list, first: int, timeout_s: float, poll_s: float = 0.5) -> int:
    """Index of a worker that answers a ping, preferring ``first`` then the next ones round-robin;
    waits for restarting workers up to ``timeout_s`` (a busy worker answers once its current call
    ends). RuntimeError when none answers in time, or at once when every worker is dead for good
    (``ActorDiedError``: its restarts are used up)."""
    order = [(first + k) % len(workers) for k in range(len(workers))]
    pings = {i: workers[i].ping.remote() for i in order}  # None: failed, ask again after a pause
    dead: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        asked = [ref for ref in pings.values() if ref is not None]
        if asked:
            ray.wait(asked, num_returns=1, timeout=poll_s)
        answered = []
        for i in order:
            if pings[i] is None or not ray.wait([pings[i]], timeout=0)[0]:
                continue
            try:
                ray.get(pings[i])
                answered.append(i)
            except ActorDiedError:  # no restart left
                dead.add(i)
                pings[i] = None
            except RayActorError:  # restarting
                pings[i] = None
        if answered:
            return answered[0]
        if len(dead) == len(workers):
            raise RuntimeError(f"every rollout worker ({len(workers)}) died for good: cluster.max_restarts used up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no rollout worker answered within {timeout_s:g} s (each was dead or restarting; "
                               "cluster.max_restarts bounds the restarts)")
        if any(ref is None for ref in pings.values()):
            time.sleep(poll_s)
            pings = {i: workers[i].ping.remote() if ref is None and i not in dead else ref
                     for i, ref in pings.items()}


@dataclass(frozen=True)
class ScoringFailure:
    """A scoring request given up on: ``reason`` is LOST or BAD_REQUEST, ``detail`` the last error."""

    reason: str
    detail: str


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}"


def resolve_scores(handle, kind: str, items: list, responses: list, retries: Counter, max_attempts: int,
                   timeout_s: float, pause_s: float = 1.0) -> list:
    """Each request's result (in order), or a ScoringFailure: ``responses[i]`` answers ``items[i]``
    sent to ``handle``. Lost requests are resent, all at once per round, for ``max_attempts``
    rounds in all (each resend counts one ``retries[kind]``); a request whose scorer raised is
    sent once more alone. GetTimeoutError (a service that does not answer) propagates."""
    results: list = [None] * len(items)
    todo = list(range(len(items)))
    for attempt in range(1, max_attempts + 1):
        lost = []
        for i in todo:
            try:
                results[i] = responses[i].result(timeout_s=timeout_s)
            except GetTimeoutError:
                raise
            except Exception as err:  # noqa: BLE001 - sorted into lost and bad below
                if replica_died(err):
                    lost.append((i, err))
                    continue
                results[i] = _alone(handle, kind, items[i], err, timeout_s)
                if isinstance(results[i], BaseException):
                    lost.append((i, results[i]))
        if not lost:
            break
        if attempt == max_attempts:
            for i, err in lost:
                results[i] = ScoringFailure(LOST, _first_line(err))
            log.error("%d %s requests still lost after %d attempts: %s", len(lost), kind, attempt,
                      _first_line(lost[0][1]))
            break
        retries[kind] += len(lost)
        log.warning("%d %s requests lost (%s); resending them at once (attempt %d of %d)", len(lost), kind,
                    _first_line(lost[0][1]), attempt + 1, max_attempts)
        time.sleep(pause_s)
        for i, _ in lost:
            responses[i] = handle.remote(items[i])
        todo = [i for i, _ in lost]
    return results


def _alone(handle, kind: str, item, err: BaseException, timeout_s: float):
    """A request whose batch failed in the scorer, sent once more on its own: its result, a
    ScoringFailure(BAD_REQUEST) if it fails alone, or the error if its replica died meanwhile."""
    log.warning("%s request failed in the scorer (%s); sending it once more on its own", kind, _first_line(err))
    try:
        return handle.remote(item).result(timeout_s=timeout_s)
    except GetTimeoutError:
        raise
    except Exception as again:  # noqa: BLE001
        if replica_died(again):
            return again
        log.error("%s request failed in the scorer on its own: %s", kind, _first_line(again))
        return ScoringFailure(BAD_REQUEST, _first_line(again))
