"""Every role that reserves a GPU asks for CUDA: on a real local Ray that advertises a GPU this
machine lacks, a training job, a learner group and each scoring service that reserved it fail at
once with an error naming the role and the config key, instead of running on the CPU."""
from __future__ import annotations

import pytest
import ray
import torch
from ray import serve

from actors.learner import LearnerGroup, LearnerRankError
from actors.scoring_services import start_services
from edit_rl.config import load_config
from jobs import train

CPU_TINY = "jobs/configs/cpu_tiny.yaml"
SYNTHETIC = ["judge.backend=synthetic", "consistency.detector=synthetic", "filter.enabled=false"]
NO_CUDA = "reserved a GPU, CUDA unavailable"

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False)  # a GPU this machine does not have
    yield
    serve.shutdown()
    ray.shutdown()


def test_a_training_job_whose_rollout_workers_reserved_a_gpu_fails_at_once(tmp_path):
    with pytest.raises(RuntimeError) as err:
        train.main(["--output-dir", str(tmp_path), *SYNTHETIC, "cluster.rollout_num_gpus=1", "trainer.num_steps=1"])
    message = str(err.value)
    assert message.startswith("rollout worker 0 failed to start")
    assert f"rollout worker 0 {NO_CUDA}: cluster.rollout_num_gpus=1" in message
    assert not list(tmp_path.glob("*/metrics.jsonl"))  # it failed before the first step
    assert ray.available_resources().get("GPU") == 1.0  # its placement group is gone


def test_a_learner_rank_that_reserved_a_gpu_fails_naming_it():
    cfg = load_config(CPU_TINY, ["learner.num_gpus_per_rank=1", "cluster.colocate_rollout_and_learner=false"])
    with pytest.raises(LearnerRankError) as err:
        LearnerGroup(cfg)
    assert f"learner rank 0 {NO_CUDA}: learner.num_gpus_per_rank=1" in str(err.value)


@pytest.mark.parametrize("role, other", [("judge", "consistency.detector=synthetic"),
                                         ("consistency", "judge.backend=synthetic")])
def test_a_scoring_service_that_reserved_a_gpu_fails_to_deploy_naming_it(role, other):
    # The role's real tiny model (vLLM judge, EdiVal-CC); the other service is the synthetic one,
    # which loads nothing, so the test waits for no model.
    cfg = load_config(CPU_TINY, [f"{role}.scaling.num_gpus=1", other])
    with pytest.raises(RuntimeError) as err:
        start_services(cfg, app_prefix="device-test")
    message = str(err.value)
    assert f"Serve application 'device-test-{role}' failed to deploy" in message
    assert f"{role} replica {NO_CUDA}: {role}.scaling.num_gpus=1" in message
    assert not any(app.startswith("device-test") for app in serve.status().applications)
