"""scripts/setup.sh's GPU branch, run on a temporary copy of the scripts with fake `python3` and
`nvidia-smi` on PATH (so nothing is installed): it refuses a venv it did not build and an NVIDIA
driver older than 580 before creating anything; scripts/check_nvidia_driver.sh alone."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def repo(tmp_path):
    """A copy of the setup scripts and requirement files, and a bin/ folder of fakes first on PATH;
    the fake python3 records any call (creating the venv would be one)."""
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    for name in ("scripts/setup.sh", "scripts/check_nvidia_driver.sh", "scripts/torchvision_cpu_hook.py",
                 "requirements-gpu.txt", "requirements-cpu.txt"):
        shutil.copy(ROOT / name, copy / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "python3", f'echo "$@" >> {tmp_path}/python3-calls; exit 1')
    return copy, bin_dir


def _run(script: Path, bin_dir: Path, **env) -> subprocess.CompletedProcess:
    path = f"{bin_dir}:/usr/bin:/bin"
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env})


def test_both_scripts_parse():
    for name in ("setup.sh", "check_nvidia_driver.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)]).returncode == 0


def test_the_gpu_stack_refuses_a_venv_it_did_not_build(repo, tmp_path):
    copy, bin_dir = repo
    (copy / ".venv" / "bin").mkdir(parents=True)  # a CPU venv from an earlier setup (no stack record)
    out = _run(copy / "scripts" / "setup.sh", bin_dir, EDIT_RL_STACK="gpu")
    assert out.returncode == 1
    assert "built by another setup, not by EDIT_RL_STACK=gpu" in out.stderr and "rm -rf" in out.stderr
    (copy / ".venv" / ".edit_rl_stack").write_text("cpu\n")
    out = _run(copy / "scripts" / "setup.sh", bin_dir, EDIT_RL_STACK="gpu")
    assert out.returncode == 1 and "built by cpu, not by EDIT_RL_STACK=gpu" in out.stderr
    assert not (tmp_path / "python3-calls").exists()  # refused before creating or touching anything


def test_the_gpu_stack_stops_at_an_old_driver_before_creating_the_venv(repo, tmp_path):
    copy, bin_dir = repo
    _fake(bin_dir, "nvidia-smi", 'echo "550.54.15"')
    out = _run(copy / "scripts" / "setup.sh", bin_dir, EDIT_RL_STACK="gpu")
    assert out.returncode == 1 and "NVIDIA driver 550.54.15 is older than 580" in out.stderr
    assert not (copy / ".venv").exists() and not (tmp_path / "python3-calls").exists()


@pytest.mark.parametrize("reported, code, message", [
    ("580.65.06", 0, "NVIDIA driver 580.65.06 (>= 580)"),
    ("590.10", 0, "NVIDIA driver 590.10 (>= 580)"),
    ("535.183.01\n535.183.01", 1, "NVIDIA driver 535.183.01 is older than 580"),
    ("", 0, "reports no GPU driver: NVIDIA driver check skipped"),
    ("N/A", 1, "cannot read the NVIDIA driver version"),
])
def test_the_driver_check_reads_nvidia_smi(repo, reported, code, message):
    copy, bin_dir = repo
    _fake(bin_dir, "nvidia-smi", f'[ "$*" = "--query-gpu=driver_version --format=csv,noheader" ] || exit 9\n'
                                 f'printf "%b\\n" "{reported}"')
    out = _run(copy / "scripts" / "check_nvidia_driver.sh", bin_dir)
    assert (out.returncode, message in out.stderr) == (code, True), out.stderr


def test_a_node_without_nvidia_smi_skips_the_driver_check(repo):
    copy, bin_dir = repo
    out = _run(copy / "scripts" / "check_nvidia_driver.sh", bin_dir)
    assert out.returncode == 0 and "no nvidia-smi on this node" in out.stderr
