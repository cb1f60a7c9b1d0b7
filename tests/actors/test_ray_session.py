"""Connecting to Ray (actors/ray_session.py).

The driver hands HF_TOKEN and HF_HOME to every actor through the job's runtime env: checked on
a real Ray cluster started without them (so its workers cannot inherit them from the raylet).

A local Ray started by ``actors.ray_session.connect`` dies with its driver: after the driver
process is SIGKILLed, none of the processes it started (GCS, raylet, agents, workers) remains.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
from ray.cluster_utils import Cluster

from actors.ray_session import connect, forwarded_env_vars

pytestmark = pytest.mark.ray  # starts Ray clusters and drivers of its own
ROOT = Path(__file__).resolve().parents[2]
DRIVER = ("import time, ray\n"
          "from actors.ray_session import connect\n"
          "connect(num_cpus=1)\n"
          "print(ray._private.worker._global_node.get_session_dir_path(), flush=True)\n"
          "time.sleep(600)\n")


def alive(processes: dict[int, tuple[float, str]]) -> dict[int, str]:
    out = {}
    for pid, (created, name) in processes.items():
        try:
            if psutil.Process(pid).create_time() == created and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out[pid] = name
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_sigkilled_driver_leaves_no_process_of_its_local_ray_behind():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    started: dict[int, tuple[float, str]] = {}
    try:
        session = driver.stdout.readline().strip()
        assert session.startswith("/") and Path(session).is_dir(), session
        started = {p.pid: (p.create_time(), " ".join(p.cmdline()) or p.name())
                   for p in psutil.Process(driver.pid).children(recursive=True)}
        names = " | ".join(name for _, name in started.values())
        assert "raylet" in names and "gcs_server" in names and "ray::DashboardAgent" in names, names
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        deadline = time.monotonic() + 30
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert alive(started) == {}
        with_session = [p.pid for p in psutil.process_iter(["cmdline"]) if session in " ".join(p.info["cmdline"] or [])]
        assert with_session == []
    finally:
        driver.kill()
        for pid in alive(started):  # only if the test failed: end what it started, by pid
            psutil.Process(pid).kill()


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
