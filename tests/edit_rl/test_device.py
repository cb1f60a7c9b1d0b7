"""edit_rl.device.role_device: a role that reserved a GPU runs on CUDA or fails at once."""
import pytest
import torch

from edit_rl.device import RoleDeviceError, allow_tf32, role_device


def test_a_role_without_a_gpu_runs_on_the_cpu():
    assert role_device(0, "rollout worker 0", "cluster.rollout_num_gpus") == torch.device("cpu")


@pytest.mark.parametrize("num_gpus", [1, 0.5])
def test_a_role_that_reserved_a_gpu_without_cuda_fails_naming_the_role_and_the_key(monkeypatch, num_gpus):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # mock: a node without CUDA (as this one)
    with pytest.raises(RoleDeviceError) as err:
        role_device(num_gpus, "consistency replica", "consistency.scaling.num_gpus")
    message = str(err.value)
    assert message.startswith(f"consistency replica reserved a GPU, CUDA unavailable: "
                              f"consistency.scaling.num_gpus={num_gpus:g}")
    assert "set consistency.scaling.num_gpus=0 to run this role on the CPU" in message


def test_a_role_that_reserved_a_gpu_runs_on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # mock: CUDA cannot run here
    assert role_device(0.5, "learner rank 0", "learner.num_gpus_per_rank") == torch.device("cuda")


def test_tf32_leaves_torch_defaults_on_the_cpu_and_when_off():
    before = torch.get_float32_matmul_precision()
    allow_tf32(True, torch.device("cpu"))
    allow_tf32(False, torch.device("cuda"))
    assert torch.get_float32_matmul_precision() == before == "highest"


def test_tf32_on_a_gpu_role_lowers_the_float32_matmul_precision():
    try:
        allow_tf32(True, torch.device("cuda"))  # only a setting: no CUDA call
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision("highest")
