"""The README's cluster path: `ray start --head` from the venv, then `ray job submit` of the CPU
default, exactly as a user types it (own ports and temp dir, so nothing else on the machine is
touched; the cluster's processes are stopped by their temp dir at the end)."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from edit_rl.observability import read_metrics

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_cluster(temp_dir: str) -> None:
    subprocess.run(["pkill", "-f", temp_dir], check=False)
    time.sleep(2)
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)


def wait_for_jobs_api(address: str, env: dict, timeout_s: float = 120) -> None:
    """`ray start` returns before the job agent accepts submissions ("No available agent")."""
    deadline = time.time() + timeout_s
    while True:
        probe = subprocess.run([str(VENV_BIN / "ray"), "job", "list", "--address", address], env=env,
                               capture_output=True, text=True, timeout=60)
        if probe.returncode == 0 and "No available agent" not in probe.stdout + probe.stderr:
            return
        if time.time() > deadline:
            raise AssertionError(f"the Jobs API at {address} never became ready: {probe.stderr[-2000:]}")
        time.sleep(2)


@pytest.mark.ray
def test_ray_job_submit_runs_the_cpu_default_on_a_started_cluster(tmp_path):
    # Ray 2.60 turns token auth on for a local `ray start`; a client sends the token (from the
    # user's Ray folder) only with RAY_AUTH_MODE=token, so both sides set it (README: pitfalls).
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="erl", dir="/tmp")  # short: Ray's socket paths have a length limit
    dashboard = free_port()
    runtime_env = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    runtime_env["env_vars"]["EDIT_RL_TINY_MODELS"] = str(ROOT / ".cache" / "tiny-models")  # reuse the builds
    (tmp_path / "runtime_env.yaml").write_text(yaml.safe_dump(runtime_env))
    out_dir = tmp_path / "runs"
    try:
        subprocess.run([str(VENV_BIN / "ray"), "start", "--head", f"--port={free_port()}",
                        f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1", "--num-cpus=4",
                        # every fixed default port too: another Ray on this machine may hold them
                        f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                        f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
                        f"--ray-client-server-port={free_port()}",
                        f"--temp-dir={temp_dir}", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        wait_for_jobs_api(f"http://127.0.0.1:{dashboard}", env)
        for _ in range(10):  # the job agent may register a little after the API answers
            job = subprocess.run(
                [str(VENV_BIN / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dashboard}",
                 "--working-dir", str(ROOT), "--runtime-env", str(tmp_path / "runtime_env.yaml"), "--",
                 "python", "-m", "jobs.train", "--output-dir", str(out_dir), "trainer.num_steps=1"],
                env=env, capture_output=True, text=True, timeout=900)
            if "No available agent" not in job.stdout + job.stderr:
                break
            time.sleep(3)
        assert job.returncode == 0, (job.stdout[-4000:], job.stderr[-4000:])
        assert "succeeded" in job.stdout
        assert "ray: cluster at" in job.stdout  # the job joined the started cluster, not a new local one
        runs = list(out_dir.glob("cpu-tiny-*"))
        assert len(runs) == 1 and [r["step"] for r in read_metrics(runs[0])] == [0]
    finally:
        stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
