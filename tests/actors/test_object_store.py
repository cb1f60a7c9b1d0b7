"""The object store as the driver reads it (actors/object_store.py) and leaving Ray
(actors/ray_session.disconnect), on a real local Ray."""
import numpy as np
import pytest
import ray

from actors.object_store import put, store_stats
from actors.ray_session import connect, disconnect

pytestmark = pytest.mark.ray


def test_a_put_value_shows_in_the_store_stats_and_disconnect_leaves_ray():
    connect(num_cpus=1, log_to_driver=False)
    try:
        before = store_stats()
        value = np.arange(2**20, dtype=np.float32)  # 4 MiB: kept in the shared-memory store, not inline
        ref = put(value)
        after = store_stats()
        assert after.num_objects == before.num_objects + 1
        assert after.bytes_used - before.bytes_used >= value.nbytes
        np.testing.assert_array_equal(ray.get(ref), value)
    finally:
        disconnect()
    assert not ray.is_initialized()
