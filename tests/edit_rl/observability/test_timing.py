"""StageTimer: per-stage seconds, step wall time, images/s."""
import time

import pytest

from edit_rl.observability import StageTimer


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_stage_times_step_time_and_throughput_with_real_sleeps():
    timer = StageTimer()
    with timer.stage("rollout", images=12):
        time.sleep(0.05)
    with timer.stage("judge"):
        time.sleep(0.02)
    time.sleep(0.01)  # outside any stage: counts in the step only
    m = timer.finish_step(images=12)
    assert set(m) == {"timing/rollout_s", "timing/judge_s", "timing/step_s", "throughput/rollout_images_per_s",
                      "throughput/images_per_s"}
    assert 0.045 <= m["timing/rollout_s"] < 0.5
    assert 0.018 <= m["timing/judge_s"] < 0.5
    assert m["timing/step_s"] >= m["timing/rollout_s"] + m["timing/judge_s"] + 0.009
    assert m["throughput/images_per_s"] == pytest.approx(12 / m["timing/step_s"])
    assert 24 < m["throughput/rollout_images_per_s"] <= 12 / 0.045
    # The next step starts from zero.
    with timer.stage("learner"):
        time.sleep(0.01)
    m2 = timer.finish_step()
    assert set(m2) == {"timing/learner_s", "timing/step_s"} and m2["timing/step_s"] < 0.5


def test_exact_numbers_with_a_fake_clock():
    clock = FakeClock()
    timer = StageTimer(clock=clock)
    for seconds in (2.0, 3.0):  # a stage entered twice adds up
        with timer.stage("rollout", images=8):
            clock.t += seconds
    timer.add("weight_sync", 0.5)  # measured on an actor
    clock.t += 1.0
    m = timer.finish_step(images=16)
    assert m == {"timing/rollout_s": 5.0, "timing/weight_sync_s": 0.5, "timing/step_s": 6.0,
                 "throughput/rollout_images_per_s": 16 / 5.0, "throughput/images_per_s": 16 / 6.0}
    clock.t += 4.0  # e.g. an evaluation between steps
    timer.start_step()
    clock.t += 1.0
    assert timer.finish_step() == {"timing/step_s": 1.0}


def test_a_stage_that_raises_is_still_timed():
    clock = FakeClock()
    timer = StageTimer(clock=clock)
    with pytest.raises(RuntimeError):
        with timer.stage("judge"):
            clock.t += 2.0
            raise RuntimeError("judge down")
    assert timer.finish_step()["timing/judge_s"] == 2.0
