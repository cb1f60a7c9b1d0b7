"""A local Ray started by ``actors.ray_session.connect`` dies with its driver: after the driver
process is SIGKILLed, none of the processes it started (GCS, raylet, agents, workers) remains."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

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
