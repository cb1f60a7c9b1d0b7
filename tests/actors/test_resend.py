"""Resending lost work on a real local Ray and Serve: lost scoring requests resent all at once, a
scorer's error told from a dead replica (its batch-mates still scored), bounded retries ending in
a ScoringFailure, and a lost rollout call waiting for its restarting worker."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import pytest
import ray
from ray import serve

from actors.resend import BAD_REQUEST, LOST, ScoringFailure, live_worker, resolve_scores


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()


@serve.deployment(max_ongoing_requests=16, graceful_shutdown_wait_loop_s=0.1)
class Doubler:
    """Doubles a number after ``delay_s``; raises ValueError on "bad"; the process exits on "die"."""

    def __init__(self, delay_s: float):
        self.delay_s = delay_s

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    async def double(self, items: list) -> list:
        if "die" in items:
            os._exit(1)
        if "bad" in items:
            raise ValueError("cannot double 'bad'")
        await asyncio.sleep(self.delay_s)
        return [2 * x for x in items]

    async def __call__(self, item):
        return await self.double(item)

    def pid(self) -> int:
        return os.getpid()


class Recorder:
    """A Serve handle that notes when each request was sent (the handle itself, not a stand-in)."""

    def __init__(self, handle):
        self.handle, self.sent = handle, []

    def remote(self, item):
        self.sent.append((item, time.monotonic()))
        return self.handle.remote(item)


def deploy(name: str, delay_s: float) -> Recorder:
    return Recorder(serve.run(Doubler.bind(delay_s), name=name, route_prefix=None))


def test_requests_lost_with_their_replica_are_resent_at_once_and_all_scored():
    handle = deploy("resend-lost", delay_s=3.0)
    items = [1, 2, 3, 4]
    responses = [handle.remote(x) for x in items]
    time.sleep(1.0)  # all four are in the replica's batch
    os.kill(handle.handle.pid.remote().result(), signal.SIGKILL)
    retries = Counter()
    results = resolve_scores(handle, "judge", items, responses, retries, max_attempts=3, timeout_s=120)
    assert results == [2, 4, 6, 8]
    assert retries == Counter({"judge": 4})
    resent = [t for _, t in handle.sent[len(items):]]
    assert len(resent) == 4 and max(resent) - min(resent) < 0.5  # one round, not one after another
    serve.delete("resend-lost")


def test_a_scorer_error_is_not_a_dead_replica_and_spares_its_batch_mates():
    handle = deploy("resend-bad", delay_s=0.0)
    items = [1, "bad", 3]
    retries = Counter()
    results = resolve_scores(handle, "consistency", items, [handle.remote(x) for x in items], retries,
                             max_attempts=3, timeout_s=60)
    assert results[0] == 2 and results[2] == 6  # their batch failed with "bad"; each scored alone
    assert isinstance(results[1], ScoringFailure) and results[1].reason == BAD_REQUEST
    assert results[1].detail.endswith("ValueError: cannot double 'bad'")
    assert retries == Counter()  # no resend counted as a lost request
    assert [item for item, _ in handle.sent].count("bad") == 2  # sent once more alone, then given up
    serve.delete("resend-bad")


def test_a_request_whose_replica_dies_every_time_gives_up_after_max_attempts():
    handle = deploy("resend-die", delay_s=0.0)
    retries = Counter()
    results = resolve_scores(handle, "judge", ["die"], [handle.remote("die")], retries, max_attempts=2, timeout_s=120)
    assert len(results) == 1 and isinstance(results[0], ScoringFailure) and results[0].reason == LOST
    assert retries == Counter({"judge": 1}) and len(handle.sent) == 2
    serve.delete("resend-die")


@ray.remote(max_restarts=1, max_task_retries=0)
class Sleeper:
    def ping(self) -> int:
        return os.getpid()

    def sleep(self, seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()


def test_live_worker_waits_for_a_restarting_worker_and_prefers_one_that_answers():
    restarting, busy = Sleeper.remote(), Sleeper.remote()
    pid = ray.get(restarting.ping.remote())
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    assert live_worker([restarting], 0, timeout_s=60) == 0  # waited for the restart
    assert ray.get(restarting.ping.remote()) != pid and time.monotonic() - start < 60
    running = busy.sleep.remote(3.0)  # a busy worker answers only after its call
    os.kill(ray.get(restarting.ping.remote()), signal.SIGKILL)  # no restart left: dead for good
    assert live_worker([restarting, busy], 0, timeout_s=30) == 1
    assert ray.wait([running], timeout=0)[0]  # it answered after the call ended
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"every rollout worker \(1\) died for good"):
        live_worker([restarting], 0, timeout_s=60)
    assert time.monotonic() - start < 30  # told at once, not after the timeout
    busy_pid = ray.get(busy.ping.remote())
    os.kill(busy_pid, signal.SIGKILL)  # restarting: no answer within the timeout
    with pytest.raises(RuntimeError, match="no rollout worker answered within 0.1 s"):
        live_worker([busy], 0, timeout_s=0.1)
