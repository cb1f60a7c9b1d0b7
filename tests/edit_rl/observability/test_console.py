"""Console: the per-step line carries the numbers; progress works without a TTY."""
import io

from edit_rl.observability import ConsoleProgress, format_duration, format_step_line


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


SCALARS = {"reward/if_turn1": 4.25, "reward/if_turn2": 3.5, "reward/if_turn3": 2.875, "reward/cc_turn2": 0.91,
           "reward/cc_turn3": 0.875, "filter/kept_fraction": 0.75, "loss": 0.0123, "staleness/max": 1.0, "timing/step_s": 4.2}


def test_step_line_contains_every_number():
    line = format_step_line(11, 80, SCALARS, eta_s=286.0)
    assert line == ("step 12/80 (15%) | IF 4.25 / 3.50 / 2.88 | CC 0.91 / 0.88 | kept 0.75 | loss +0.0123"
                    " | stale 1 | 4.20 s/step | eta 4m46s")


def test_step_line_leaves_out_what_is_missing_and_survives_nan():
    line = format_step_line(0, 10, {"loss": float("nan"), "reward/if_turn10": 1.0, "reward/if_turn2": 2.0},
                            step_s=0.5)
    assert line == "step 1/10 (10%) | IF 2.00 / 1.00 | loss +nan | 0.50 s/step"


def test_durations():
    assert [format_duration(s) for s in (5.04, 59.9, 60, 286, 7384, float("inf"))] == [
        "5.0s", "59.9s", "1m00s", "4m46s", "2h03m", "?"]


def fake_clock(step_s: float):
    t = [0.0]

    def clock() -> float:
        return t[0]

    def tick() -> None:
        t[0] += step_s
    return clock, tick


def test_not_a_tty_writes_plain_lines_every_log_every_steps_with_eta():
    out = io.StringIO()
    clock, tick = fake_clock(2.0)
    progress = ConsoleProgress(total=10, log_every=4, stream=out, clock=clock)
    for step in range(10):
        tick()
        progress.update(step, {"loss": 0.5})
    progress.close()
    text = out.getvalue()
    assert "\r" not in text and "\033" not in text
    lines = text.splitlines()
    assert lines == ["step 1/10 (10%) | loss +0.5 | 2.00 s/step | eta 18.0s",
                     "step 5/10 (50%) | loss +0.5 | 2.00 s/step | eta 10.0s",
                     "step 9/10 (90%) | loss +0.5 | 2.00 s/step | eta 2.0s",
                     "step 10/10 (100%) | loss +0.5 | 2.00 s/step | eta 0.0s"]


def test_resumed_progress_counts_only_its_own_steps_for_the_eta():
    out = io.StringIO()
    clock, tick = fake_clock(3.0)
    progress = ConsoleProgress(total=100, start_step=50, stream=out, clock=clock)
    tick()
    assert progress.update(50, {}) == "step 51/100 (51%) | 3.00 s/step | eta 2m27s"  # 49 steps x 3 s


def test_a_deadline_before_the_last_step_bounds_the_eta_and_says_so():
    out = io.StringIO()
    clock, tick = fake_clock(3.0)
    progress = ConsoleProgress(total=100, stream=out, clock=clock, deadline=clock() + 60.0)
    tick()
    assert progress.update(0, {}) == "step 1/100 (1%) | 3.00 s/step | eta 57.0s (time budget)"  # not 99 x 3 s
    late = ConsoleProgress(total=3, stream=out, clock=clock, deadline=clock() + 60.0)
    tick()
    assert late.update(0, {}) == "step 1/3 (33%) | 3.00 s/step | eta 6.0s"  # the steps end first


def test_tty_redraws_a_bar_between_log_lines():
    out = TTY()
    clock, tick = fake_clock(1.0)
    progress = ConsoleProgress(total=4, log_every=10, stream=out, clock=clock)
    for step in range(4):
        tick()
        progress.update(step, {})
    text = out.getvalue()
    assert "\r\033[K[" + "#" * 15 + "." * 15 + "] 2/4 eta 2.0s" in text
    assert text.endswith("step 4/4 (100%) | 1.00 s/step | eta 0.0s\n")
