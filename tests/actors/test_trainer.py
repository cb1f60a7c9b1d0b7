"""The driver's time budget rule (actors.trainer.out_of_time) on hand-worked numbers; the budget in a
real run is tested in test_train_ray.py."""
from actors.trainer import out_of_time


def test_stops_when_one_more_mean_step_would_overrun_the_budget():
    # 10 min budget = 600 s. 3 steps took 150 s of loop time (mean 50 s) after 60 s of startup.
    assert not out_of_time(elapsed_s=210.0, loop_s=150.0, steps_done=3, budget_minutes=10)  # 260 <= 600
    assert not out_of_time(elapsed_s=550.0, loop_s=490.0, steps_done=10, budget_minutes=10)  # 550 + 49 = 599
    assert out_of_time(elapsed_s=552.0, loop_s=492.0, steps_done=10, budget_minutes=10)  # 552 + 49.2 > 600
    assert out_of_time(elapsed_s=601.0, loop_s=541.0, steps_done=11, budget_minutes=10)  # already over


def test_no_budget_or_no_step_yet_never_stops():
    assert not out_of_time(elapsed_s=1e9, loop_s=1e9, steps_done=5, budget_minutes=None)
    # Every process trains at least one step, however long the startup took.
    assert not out_of_time(elapsed_s=1e9, loop_s=0.0, steps_done=0, budget_minutes=0.001)
