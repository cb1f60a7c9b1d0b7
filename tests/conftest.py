"""Test tiers: a test that uses a ``local_ray`` fixture (directly or through another fixture) starts a
local Ray cluster, so it is marked ``ray``; every Ray test is also ``slow`` (starting Ray, Serve
and the actors alone takes over 20 s here). Quick run: ``scripts/test.sh -m "not slow"``."""
import pytest
import torch


def pytest_collection_modifyitems(items):
    for item in items:
        if "local_ray" in item.fixturenames or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    on a shared, loaded 2-core machine two threads run small ops many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
