"""Connecting the driver to Ray: a cluster when an address is known, else a local one.

``ray job submit`` sets RAY_ADDRESS for the entrypoint, so the same command joins the cluster
there and starts an embedded local Ray on a laptop or CI machine. The local Ray binds its
dashboard to 127.0.0.1 only, and shares the driver's fate: ``actors.orphan_reaper`` (started
first, in its own session) kills what the driver started once the driver is gone, also after a
SIGKILL, which leaves no chance to shut Ray down.

The driver hands ``HF_TOKEN`` and ``HF_HOME`` (when set in its environment) to every actor through
the job's runtime env, so gated models load on nodes whose Ray was started without them; a variable
the submitted job's runtime env already sets is left to it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping

import ray

log = logging.getLogger(__name__)


FORWARDED_ENV_VARS = ("HF_TOKEN", "HF_HOME")  # gated weights and the shared model cache
JOB_CONFIG_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # the submitted job's config, set by Ray's job supervisor


def forwarded_env_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """`FORWARDED_ENV_VARS` set in ``environ`` and not already in the submitted job's runtime env
    (Ray refuses a driver runtime env that sets the job's variables again)."""
    job_config = json.loads(environ.get(JOB_CONFIG_ENV_VAR, "{}"))
    job_vars = (job_config.get("runtime_env") or {}).get("env_vars") or {}
    return {k: environ[k] for k in FORWARDED_ENV_VARS if environ.get(k) and k not in job_vars}


def connect(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> str:
    """Join ``address`` (or $RAY_ADDRESS), else start a local Ray. Returns a description. With
    ``log_to_driver`` False the actors' output stays in Ray's log files (the benchmarks' console)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return "already connected"
    runtime_env = {"env_vars": forwarded_env_vars(os.environ)}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env, log_to_driver=log_to_driver)
        return f"cluster at {address}"
    start_reaper()
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
             dashboard_host="127.0.0.1", runtime_env=runtime_env, log_to_driver=log_to_driver)
    return f"local Ray ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"


def disconnect() -> None:
    """Shut Serve down (when it runs; a failure to is ignored, Ray's shutdown ends it anyway), then
    leave Ray (a local Ray stops)."""
    from ray import serve

    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()


def start_reaper() -> subprocess.Popen:
    """Start ``actors.orphan_reaper`` for this process (in its own session, so a signal to the
    driver's process group does not reach it)."""
    return subprocess.Popen([sys.executable, "-m", "actors.orphan_reaper", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
