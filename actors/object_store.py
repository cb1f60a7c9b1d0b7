"""The driver's direct use of Ray's object store: put a value in it, read how much it holds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class StoreStats:
    bytes_used: int
    num_objects: int


def put(value: Any) -> ray.ObjectRef:
    """``value`` in the object store, owned by the caller; its reference."""
    return ray.put(value)


def store_stats() -> StoreStats:
    """The object store's bytes in use and its number of objects, as Ray's GCS reports them (the
    figures ``ray memory`` prints; read through Ray's internal API, which has no public one)."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    reply = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address))
    return StoreStats(int(reply.store_stats.object_store_bytes_used), int(reply.store_stats.num_local_objects))
