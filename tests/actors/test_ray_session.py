"""The driver hands HF_TOKEN and HF_HOME to every actor through the job's runtime env: checked on
a real Ray cluster started without them (so its workers cannot inherit them from the raylet)."""
import json

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.ray_session import connect, forwarded_env_vars


def test_only_set_variables_the_submitted_job_does_not_set_already_are_forwarded():
    assert forwarded_env_vars({"HF_TOKEN": "hf_x", "HF_HOME": "/shared/hf", "OTHER": "1"}) == \
        {"HF_TOKEN": "hf_x", "HF_HOME": "/shared/hf"}
    assert forwarded_env_vars({"HF_TOKEN": ""}) == {}
    job = json.dumps({"runtime_env": {"env_vars": {"HF_TOKEN": "hf_x"}}, "metadata": {}})
    assert forwarded_env_vars({"HF_TOKEN": "hf_x", "HF_HOME": "/h", "RAY_JOB_CONFIG_JSON_ENV_VAR": job}) == \
        {"HF_HOME": "/h"}


@ray.remote(num_cpus=0)
def _seen() -> tuple:
    import os

    return os.environ.get("HF_TOKEN"), os.environ.get("HF_HOME")


def test_actors_on_a_cluster_started_without_them_see_the_drivers_token_and_cache(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        monkeypatch.setenv("HF_HOME", "/shared/hf-home")
        assert connect(cluster.address).startswith("cluster at")
        assert ray.get(_seen.remote()) == ("hf_test_token", "/shared/hf-home")
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(autouse=True)
def _no_ray_left():
    yield
    assert not ray.is_initialized()
