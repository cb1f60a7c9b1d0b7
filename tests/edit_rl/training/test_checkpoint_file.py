"""Checkpoint files are loaded as tensors and plain data only: a crafted pickle that would run a
command is refused (and the command does not run); the learner's real checkpoint loads."""
import subprocess

import pytest
import torch

from edit_rl.training.checkpoint_file import UnsafeCheckpointError, load_tensor_file
from edit_rl.training.learner import Learner


class RunsACommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return subprocess.call, (["touch", self.marker],)


def test_a_pickle_that_would_run_a_command_is_refused_naming_the_file(tmp_path):
    path, marker = tmp_path / "learner.pt", tmp_path / "ran"
    torch.save({"model": {"w": torch.ones(2)}, "extra": RunsACommand(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load .*learner\.pt.*Unsupported global: GLOBAL "):
        load_tensor_file(path)
    assert not marker.exists()


def test_the_learner_refuses_a_crafted_checkpoint_and_loads_its_own(tiny_config, tmp_path):
    learner = Learner(tiny_config())
    learner.save_checkpoint(tmp_path / "real")
    state = load_tensor_file(tmp_path / "real" / "learner.pt")  # what --resume reads passes
    assert set(state) == {"model", "optimizer", "extra"} and state["extra"]["last_step"] == learner.last_step
    resumed = Learner(tiny_config())
    resumed.load_checkpoint(tmp_path / "real")
    (tmp_path / "crafted").mkdir()
    torch.save({**state, "extra": RunsACommand(tmp_path / "ran")}, tmp_path / "crafted" / "learner.pt")
    with pytest.raises(UnsafeCheckpointError, match="crafted"):
        resumed.load_checkpoint(tmp_path / "crafted")
    assert not (tmp_path / "ran").exists()


@pytest.fixture
def one_rank_process_group(monkeypatch):
    """A world of one (gloo) for DeepSpeed, torn down after the test."""
    import torch.distributed as torch_dist

    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29573", "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    torch_dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    torch_dist.destroy_process_group()


def test_deepspeed_checkpoints_load_as_plain_data_and_a_crafted_one_is_refused(tiny_config, one_rank_process_group,
                                                                               tmp_path):
    learner = Learner(tiny_config(backend="deepspeed", zero_stage=2))
    learner.save_checkpoint(tmp_path)
    learner.load_checkpoint(tmp_path)  # the real one: optimizer partition, module states, client state
    optim = next(tmp_path.rglob("*optim_states.pt"))
    state = torch.load(optim, weights_only=False)  # this test wrote it
    torch.save({**state, "extra": RunsACommand(tmp_path / "ran")}, optim)
    with pytest.raises(UnsafeCheckpointError, match="optim_states.pt"):
        learner.load_checkpoint(tmp_path)
    assert not (tmp_path / "ran").exists()
