"""Shared fixtures: the tiny FLUX.1-Kontext build at 32 px, a 2-turn SDE rollout of one chain x 3,
and training samples made from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from edit_rl.buffer.training_batch import TrainingSample
from edit_rl.config.schema import Config, EditorConfig, LearnerConfig, LoRAConfig, SamplerConfig
from edit_rl.editors.flux_kontext import FluxKontextEditor
from edit_rl.editors.load import load_editor
from edit_rl.editors.rollout import MultiTurnRollout, rollout_chains
from edit_rl.training.turn_sample import TurnSample, split_rollout

SIZE = 32
CHAINS = [["make the sky red", "add a small hat"]]
GROUP = 3


def _tiny_config(objective: str = "nft", **learner: object) -> Config:
    cfg = Config()
    cfg.editor = EditorConfig(family="flux_kontext", name_or_path="tiny/flux-kontext", dtype="float32",
                              resolution=SIZE, max_sequence_length=16, gradient_checkpointing=False)
    cfg.lora = LoRAConfig(rank=2, alpha=4)
    cfg.sampler = SamplerConfig(method="sde", num_steps=3, noise_level=0.7)
    values: dict = dict(num_ranks=1, lr=1e-2, micro_batch_size=2, num_cpus_per_rank=1, num_gpus_per_rank=0)
    values.update(learner)
    cfg.learner = LearnerConfig(**values)
    cfg.objective.name = objective  # type: ignore[assignment]
    return cfg.validate()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for these tiny models: with the cores shared, OpenMP's spinning threads
    make a step 10x slower (0.13 s -> 1-2 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., Config]:
    """Config factory: tiny_config(objective="nft", **learner_overrides)."""
    return _tiny_config


@pytest.fixture(scope="session")
def editor() -> FluxKontextEditor:
    return load_editor(_tiny_config().editor)  # type: ignore[return-value]


@pytest.fixture(scope="session")
def rollout(editor: FluxKontextEditor) -> MultiTurnRollout:
    g = torch.Generator().manual_seed(3)
    coarse = torch.rand(1, 3, 4, 4, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return rollout_chains(editor, images, CHAINS, GROUP, _tiny_config().sampler, g)


@pytest.fixture(scope="session")
def turn_samples(rollout: MultiTurnRollout) -> list[list[TurnSample]]:
    return split_rollout(rollout)


def _make_samples(turn_samples: list[list[TurnSample]], advantages: Sequence[float], rs: Sequence[float],
                  transform: Callable[[TurnSample], TurnSample] | None = None) -> list[TrainingSample]:
    """One TrainingSample per (trajectory b, turn k) with trajectory b's advantage and r (broadcast)."""
    out = []
    for b, turns in enumerate(turn_samples):
        for k, payload in enumerate(turns):
            out.append(TrainingSample(f"traj{b}", "chain0", 0, b, k, transform(payload) if transform else payload,
                                      advantage=advantages[b], r=rs[b], policy_version=0))
    return out


@pytest.fixture(scope="session")
def make_samples(turn_samples):
    return lambda advantages, rs, transform=None: _make_samples(turn_samples, advantages, rs, transform)
