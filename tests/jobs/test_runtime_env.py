"""cluster/runtime_env.yaml keeps bulky folders out of the job's working-dir package (Ray refuses
one over 512 MiB) and keeps every code folder in, judged by Ray's own exclude matcher."""
from pathlib import Path

import pytest
import yaml
from ray._private.runtime_env.packaging import _get_excludes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def excluded():
    excludes = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())["excludes"]
    return _get_excludes(ROOT, excludes)


@pytest.mark.parametrize("path", [".venv/bin/python", ".cache/tiny-models/x", ".git/HEAD", "data/chains/train.parquet",
                                  "runs/edit-rl/metrics.jsonl", "results/shapes/runs/r/config.yaml",
                                  "edit_rl/__pycache__/device.cpython-311.pyc"])
def test_bulky_folders_stay_behind(excluded, path):
    assert excluded(ROOT / path)


@pytest.mark.parametrize("path", ["edit_rl/data/parquet.py", "edit_rl/device.py", "jobs/configs/cpu_tiny.yaml",
                                  "checkpoints/shapes-base/report.md", "actors/trainer.py", "results/gpu/README.md"])
def test_code_and_the_shipped_editor_travel(excluded, path):
    assert not excluded(ROOT / path)


def test_the_kuberay_job_excludes_the_same_folders():
    runtime_env = yaml.safe_load((ROOT / "cluster" / "runtime_env.yaml").read_text())
    rayjob = yaml.safe_load((ROOT / "cluster" / "kuberay-rayjob.yaml").read_text())
    assert yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"])["excludes"] == runtime_env["excludes"]
