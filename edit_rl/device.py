"""Which device a role's model goes on, decided in one place for every role.

A role that reserves a GPU (any ``num_gpus > 0``, fractions included) puts its model on CUDA; a
role that reserves none stays on the CPU. A role that reserved a GPU but finds no CUDA device in
its process fails at once with ``RoleDeviceError``: sampling a 12B transformer on CPU threads would
look like a hung run, with no error.
"""
from __future__ import annotations

import os

import torch


class RoleDeviceError(RuntimeError):
    """A role reserved a GPU but its process sees no CUDA device."""


def role_device(num_gpus: float, role: str, key: str) -> torch.device:
    """``cuda`` when the role reserved a GPU (``num_gpus > 0``), else ``cpu``.

    ``role`` names the role in the error (e.g. "rollout worker 0"), ``key`` the config key that
    reserved the GPU (e.g. "cluster.rollout_num_gpus"). RoleDeviceError when a GPU was reserved
    and ``torch.cuda.is_available()`` is False (a CPU build of torch, no driver, or a scheduler
    that advertised a GPU the node lacks)."""
    if num_gpus <= 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RoleDeviceError(
            f"{role} reserved a GPU, CUDA unavailable: {key}={num_gpus:g}, but torch.cuda.is_available() is False "
            f"in this process (torch {torch.__version__}, built for CUDA {torch.version.cuda}; "
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}). Install the GPU stack on this node "
            f"(scripts/setup.sh), or set {key}=0 to run this role on the CPU.")
    return torch.device("cuda")


def allow_tf32(enabled: bool, device: torch.device) -> None:
    """``cluster.allow_tf32``: TensorFloat-32 float32 matmuls on CUDA (``torch.set_float32_matmul_precision
    ("high")``; cuDNN convolutions use TF32 by torch's default already). False, or a CPU device, leaves
    torch's defaults as they are."""
    if enabled and device.type == "cuda":
        torch.set_float32_matmul_precision("high")
