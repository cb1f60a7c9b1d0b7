"""Test tiers: a test that uses a ``local_ray`` fixture (directly or through another fixture) starts a
local Ray cluster, so it is marked ``ray``; every Ray test is also ``slow`` (starting Ray, Serve
and the actors alone takes over 20 s here). Quick run: ``scripts/test.sh -m "not slow"``."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "local_ray" in item.fixturenames or item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)
