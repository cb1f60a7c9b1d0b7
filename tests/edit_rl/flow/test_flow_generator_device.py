"""Samplers draw their noise on the generator's device and move it to the sample's.

CUDA refuses ``torch.randn(..., generator=<CPU generator>, device="cuda")``. Without a GPU, a torch
function mode watches every random draw while the samplers run on the "meta" device with a CPU
generator: no draw may name a device other than its generator's.
"""
import pytest
import torch
from torch.overrides import TorchFunctionMode

from edit_rl.flow import sample, sde_step_with_logprob
from edit_rl.flow.sde import flow_sde_std

RANDOM_DRAWS = {torch.randn, torch.rand, torch.randint, torch.randn_like, torch.normal}


class GeneratorDeviceCheck(TorchFunctionMode):
    """Records every random draw given a generator, and the device it asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.draws: list[tuple[str, torch.device, torch.device]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        generator = kwargs.get("generator")
        if func in RANDOM_DRAWS and generator is not None:
            device = torch.device(kwargs.get("device") or "cpu")
            self.draws.append((func.__name__, generator.device, device))
        return func(*args, **kwargs)

    def mismatches(self) -> list:
        return [d for d in self.draws if d[1] != d[2]]


def _velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return 0.5 * x - sigma.view(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("kind", ["sde", "cps"])
def test_sde_sampling_on_another_device_draws_on_the_generators_device(kind):
    x_init = torch.empty(2, 3, 4, 4, device="meta")
    generator = torch.Generator().manual_seed(0)
    with GeneratorDeviceCheck() as check:
        out = sample(_velocity, x_init, [1.0, 0.75, 0.5, 0.25, 0.0], "sde", generator=generator,
                     sde_window=(0, 3), sde_kind=kind, record=True)
    assert [d[0] for d in check.draws] == ["randn"] * 3  # one draw per SDE step
    assert check.mismatches() == []
    assert out.x0.device.type == "meta" and out.log_probs.shape == (2, 3)


def test_cpu_noise_is_unchanged_a_draw_from_the_generator_on_the_samples_device():
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    v = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    out = sde_step_with_logprob(x, v, 0.8, 0.6, 0.9, 0.7, generator=torch.Generator().manual_seed(3))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), device=x.device, dtype=x.dtype)
    noise_std = flow_sde_std(0.8, 0.9, 0.7) * (0.8 - 0.6) ** 0.5  # as the step computes it, in Python floats
    assert torch.equal(out.prev_sample, out.mean + noise_std * noise)


@pytest.mark.parametrize("kind", ["sde", "cps"])
def test_per_sample_sigmas_give_each_row_its_own_step(kind):
    # The docstring allows (B,) sigma tensors; each row must equal the step at its own floats.
    x = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(4))
    v = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(5))
    sigma, sigma_next = [1.0, 0.7, 0.4], [0.7, 0.4, 0.1]
    out = sde_step_with_logprob(x, v, torch.tensor(sigma), torch.tensor(sigma_next), 0.9, 0.8,
                                generator=torch.Generator().manual_seed(6), kind=kind)
    for i in range(3):
        row = sde_step_with_logprob(x[i:i + 1], v[i:i + 1], sigma[i], sigma_next[i], 0.9, 0.8,
                                    prev_sample=out.prev_sample[i:i + 1], kind=kind)
        torch.testing.assert_close(out.mean[i:i + 1], row.mean)
        torch.testing.assert_close(out.log_prob[i:i + 1], row.log_prob)
        torch.testing.assert_close(out.std[i:i + 1], row.std)
