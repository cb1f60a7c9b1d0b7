"""Connecting the driver to Ray: a cluster when an address is known, else a local one.

``ray job submit`` sets RAY_ADDRESS for the entrypoint, so the same command joins the cluster
there and starts an embedded local Ray on a laptop or CI machine. The local Ray binds its
dashboard to 127.0.0.1 only, and shares the driver's fate: ``actors.orphan_reaper`` (started
first, in its own session) kills what the driver started once the driver is gone, also after a
SIGKILL, which leaves no chance to shut Ray down.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import ray

log = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Join ``address`` (or $RAY_ADDRESS), else start a local Ray. Returns a description."""
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return "already connected"
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return f"cluster at {address}"
    start_reaper()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
             dashboard_host="127.0.0.1")
    return f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def start_reaper() -> subprocess.Popen:
    """Start ``actors.orphan_reaper`` for this process (in its own session, so a signal to the
    driver's process group does not reach it)."""
    return subprocess.Popen([sys.executable, "-m", "actors.orphan_reaper", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
