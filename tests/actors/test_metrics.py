"""Ray gauges for the per-step scalars, on a real local Ray."""
import warnings

import pytest
import ray

from actors import metrics as ray_metrics
from actors.metrics import RayMetrics, sanitize_metric_name


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False)
    yield
    ray.shutdown()


def test_names_are_sanitised_to_what_ray_accepts():
    assert sanitize_metric_name("reward/if_turn1") == "edit_rl_reward_if_turn1"
    assert sanitize_metric_name("timing/weight-sync.s") == "edit_rl_timing_weight_sync_s"
    assert sanitize_metric_name("3d:loss µ") == "edit_rl_3d_loss__"


def test_setting_gauges_works_and_each_name_is_made_once(local_ray):
    scalars = {"reward/if_turn1": 4.0, "reward/cc_turn2": 0.9, "timing/step_s": 1.5, "loss": float("nan"),
               "grad_norm": float("inf")}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Ray warns (and drops the metric) on an invalid name
        RayMetrics("run-a").log(0, scalars)
        made = dict(ray_metrics._GAUGES)
        RayMetrics("run-b").log(1, {**scalars, "kept_fraction": 0.5})
    names = {"edit_rl_step", "edit_rl_reward_if_turn1", "edit_rl_reward_cc_turn2", "edit_rl_timing_step_s",
             "edit_rl_loss", "edit_rl_grad_norm"}
    assert set(made) == names
    assert set(ray_metrics._GAUGES) == names | {"edit_rl_kept_fraction"}
    assert all(ray_metrics._GAUGES[n] is g for n, g in made.items())  # reused, not made again
    info = ray_metrics._GAUGES["edit_rl_loss"].info
    assert info["name"] == "edit_rl_loss" and info["tag_keys"] == ("run",)
