"""Deploying one scoring service with a fixed replica count (actors/scoring_services.py): the
application runs exactly that many replicas; a role that is not a scoring service is refused
before anything is deployed."""
import pytest
import ray
from ray import serve

from actors.scoring_services import deploy_fixed_replicas, start_serve
from edit_rl.config import load_config

SYNTHETIC = ["judge.backend=synthetic", "consistency.detector=synthetic"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    serve.shutdown()
    ray.shutdown()


def test_a_service_deployed_with_two_fixed_replicas_runs_two(local_ray):
    cfg = load_config("jobs/configs/cpu_tiny.yaml", SYNTHETIC)
    start_serve()
    deploy_fixed_replicas(cfg, "consistency", 2, "test-consistency-2")
    status = serve.status().applications["test-consistency-2"]
    assert status.status == "RUNNING"
    (deployment,) = status.deployments.values()
    assert deployment.replica_states == {"RUNNING": 2}


def test_an_unknown_service_role_is_refused_naming_the_known_ones():
    cfg = load_config("jobs/configs/cpu_tiny.yaml", [])
    with pytest.raises(ValueError, match=r"unknown scoring service 'rollout'.*\['consistency', 'judge'\]"):
        deploy_fixed_replicas(cfg, "rollout", 1, "bench-rollout-1")
