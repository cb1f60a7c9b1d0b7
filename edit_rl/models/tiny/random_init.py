"""Deterministic random initialisation helpers for the tiny builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)


def seeded(seed: int, make: Callable[[], M]) -> M:
    """Build a module with its default init under a fixed seed, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def scale_linear_weights_(module: torch.nn.Module, gain: float) -> None:
    """Multiply every nn.Linear weight by ``gain``.

    At diffusers' default init a 32-wide random DiT barely looks at its text and reference tokens
    (they move the velocity by < 1 %), which would let conditioning bugs pass unseen; a gain of 2
    makes it several percent (measured in the editors' tests).
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(gain)
