"""The GPU presets ask for a GPU on every role that runs a model, cap the judge's autoscaling,
and hand Serve an autoscaling target of one full batch per replica."""
from pathlib import Path

import pytest

from actors.scoring_services import deployment_options
from edit_rl.config import load_config

GPU_PRESETS = sorted(str(p) for p in Path("jobs/configs").glob("flux*.yaml"))


def test_there_are_gpu_presets():
    assert len(GPU_PRESETS) == 3


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_every_model_role_of_a_gpu_preset_reserves_a_gpu(preset):
    cfg = load_config(preset)
    assert cfg.cluster.rollout_num_gpus > 0 and cfg.learner.num_gpus_per_rank > 0
    assert cfg.judge.backend != "synthetic" and cfg.judge.scaling.num_gpus > 0
    assert cfg.consistency.detector != "synthetic" and cfg.consistency.scaling.num_gpus > 0


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_the_judge_scales_on_full_batches_to_at_most_four_gpus(preset):
    cfg = load_config(preset)
    scaling = cfg.judge.scaling
    autoscaling = deployment_options(scaling)["autoscaling_config"]
    assert autoscaling["target_ongoing_requests"] == scaling.max_batch_size >= 16
    assert autoscaling["max_replicas"] * scaling.num_gpus <= 4
    assert cfg.judge.max_pixels == cfg.editor.resolution ** 2  # vLLM profiles memory with this image


def test_an_explicit_autoscaling_target_wins_over_the_batch_size():
    cfg = load_config("jobs/configs/cpu_tiny.yaml", ["judge.scaling.target_ongoing_requests=2"])
    assert deployment_options(cfg.judge.scaling)["autoscaling_config"]["target_ongoing_requests"] == 2.0
    assert cfg.judge.scaling.max_batch_size == 8
