"""Checkpoints in a storage location every node reaches (trainer.storage, through pyarrow.fs), on
real local Ray: a run on a file:// URI and its resume, and the refusal of a relative run folder on
a cluster of two nodes (ray.cluster_utils.Cluster)."""
import json

import pytest
import ray
from ray.cluster_utils import Cluster
from safetensors.torch import load_file

from edit_rl.config import load_config
from edit_rl.observability import create_run_dir, read_metrics
from jobs import train
from actors.trainer import Trainer

CPU_TINY = "jobs/configs/cpu_tiny.yaml"
QUICK = ["judge.backend=synthetic", "consistency.detector=synthetic", "filter.enabled=false",
         "trainer.sample_every=0", "trainer.save_every=1"]


@pytest.fixture
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def test_a_file_uri_run_keeps_its_checkpoints_there_and_resumes_from_them(tmp_path, local_ray):
    store = tmp_path / "shared"
    common = [*QUICK, f"trainer.storage=file://{store}"]
    run_dir = train.main(["--output-dir", str(tmp_path / "runs"), *common, "trainer.num_steps=2"])
    checkpoints = store / run_dir.name / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step_*")) == ["step_000001", "step_000002"]
    assert not any((run_dir / "checkpoints").iterdir())  # nothing left on the driver's node
    assert json.loads((checkpoints / "step_000002" / "driver.json").read_text())["step"] == 2
    assert (checkpoints / "step_000002" / "learner").is_dir()
    first = load_file(checkpoints / "step_000002" / "lora" / "pytorch_lora_weights.safetensors")

    resumed = train.main(["--output-dir", str(tmp_path / "runs"), "--resume", str(run_dir), *common,
                          "trainer.num_steps=3"])
    assert resumed == run_dir
    assert [r["step"] for r in read_metrics(run_dir)] == [0, 1, 2]  # went on from the step-2 checkpoint
    assert json.loads((checkpoints / "step_000003" / "driver.json").read_text())["step"] == 3
    last = load_file(checkpoints / "step_000003" / "lora" / "pytorch_lora_weights.safetensors")
    assert first.keys() == last.keys() and any(not first[k].equal(last[k]) for k in first)


def test_a_relative_run_folder_on_two_nodes_is_refused_at_the_start(tmp_path, monkeypatch):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    cfg = load_config(CPU_TINY, QUICK)
    monkeypatch.chdir(tmp_path)
    try:
        ray.init(address=cluster.address)
        run = create_run_dir(cfg, output_dir="runs")
        with pytest.raises(ValueError, match=r"is a relative path and the Ray cluster has 2 alive nodes.*"
                                             r"Set trainer.storage"):
            Trainer(cfg, run)
        cfg.trainer.storage = f"file://{tmp_path}/shared"
        cfg.validate()
        assert ray.util.placement_group_table() == {}  # the refusal came before any actor or placement
    finally:
        ray.shutdown()
        cluster.shutdown()
