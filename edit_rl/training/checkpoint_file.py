"""Loading a checkpoint file without running code from it.

A ``torch.save`` file is a pickle, and unpickling can call any importable function: a crafted
``learner.pt`` or ``inflight_weights.pt`` would run code in the learner or the driver on resume.
``load_tensor_file`` reads one with ``torch.load(weights_only=True)``, which admits only tensors,
plain containers and numbers (what the learner and the driver save), and turns a refusal into an
error naming the file.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, BinaryIO

import torch


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holds objects other than tensors, plain containers and numbers."""


def load_tensor_file(path: str | Path | BinaryIO, map_location: Any = "cpu", name: str | None = None) -> Any:
    """``torch.load`` of ``path`` (a file, or a file object read from storage and then called
    ``name`` in errors) restricted to tensors and plain data (``weights_only=True``).
    UnsafeCheckpointError when the file would need any other object to be built."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = [line.strip().split(" was not")[0] for line in str(err).splitlines() if "WeightsUnpickler" in line]
        raise UnsafeCheckpointError(
            f"refused to load {name or path}: it holds objects other than tensors and plain data, so loading it could "
            f"run code ({found[0] if found else 'unpickling refused'}). Load only checkpoints this project "
            "wrote.") from err
