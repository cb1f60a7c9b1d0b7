"""Shared fixtures for the flow tests."""

from collections.abc import Callable

import pytest
import torch

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _nonlinear_velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return torch.sin(2.0 * x) * (0.5 + s) + torch.cos(3.0 * s) * x - 0.3 * s**2 + 0.1 * x**2


@pytest.fixture
def velocity() -> VelocityField:
    """A fixed nonlinear velocity field v(x, sigma), sigma a (B,) tensor."""
    return _nonlinear_velocity
