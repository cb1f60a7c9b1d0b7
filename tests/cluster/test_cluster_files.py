"""The Ray cluster launcher file: valid for Ray's own schema, every ray command from the venv,
boto3 for the AWS autoscaler on the head, and no local venv, caches, runs or data synced to nodes."""
import json
from pathlib import Path

import jsonschema
import ray.autoscaler
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = yaml.safe_load((ROOT / "cluster" / "ray-cluster-gpu.yaml").read_text())


def _commands(*keys: str) -> list[str]:
    return [c for k in keys for c in CLUSTER.get(k, [])]


def test_the_file_validates_against_the_cluster_launchers_schema():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(CLUSTER, schema)


def test_every_ray_command_runs_the_venvs_ray():
    starts = _commands("head_start_ray_commands", "worker_start_ray_commands")
    assert len(starts) == 4
    for command in starts:
        words = command.split()
        ray_words = [w for w in words if w == "ray" or w.endswith("/ray")]
        assert ray_words == [".venv/bin/ray"], command
        assert "cd ~/edit-rl" in command
    assert sum(".venv/bin/ray stop" in c for c in starts) == 2


def test_the_head_gets_a_pinned_boto3_in_the_venv():
    head = _commands("head_setup_commands")
    assert any(".venv/bin/python -m pip install" in c and '"boto3==' in c for c in head), head


def test_local_venv_caches_runs_and_data_are_not_synced():
    assert {".venv", ".cache", "runs", "data"} <= set(CLUSTER["rsync_exclude"])


def test_gpu_nodes_build_the_gpu_stack_then_fetch_the_presets_models():
    assert _commands("setup_commands") == ["cd ~/edit-rl && EDIT_RL_STACK=gpu bash scripts/setup.sh"]
    assert any(".venv/bin/python -m jobs.predownload --config" in c for c in _commands("worker_setup_commands"))
