"""A local Ray cluster for one test (the proof job and the ablation sweep start and stop theirs)."""
import pytest
import ray


@pytest.fixture()
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()
