"""Shared fixtures: the tiny FLUX.1-Kontext build (via the registry, as a run resolves it)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from diffusers import FluxKontextPipeline

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.flux_kontext import FluxKontextEditor
from edit_rl.models.registry import resolve_model

TINY = "tiny/flux-kontext"
SIZE = 64
MAX_SEQ = 16  # T5 tokens; the tiny build's tokenizers are character-level


def _tiny_cfg(**overrides) -> EditorConfig:
    values = dict(family="flux_kontext", name_or_path=TINY, dtype="float32", resolution=SIZE,
                  max_sequence_length=MAX_SEQ, gradient_checkpointing=False)
    values.update(overrides)
    return EditorConfig(**values)


@pytest.fixture(scope="session")
def tiny_path() -> str:
    return resolve_model(TINY)


@pytest.fixture(scope="session")
def pipeline(tiny_path: str) -> FluxKontextPipeline:
    pipe = FluxKontextPipeline.from_pretrained(tiny_path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def shared_editor(tiny_path: str) -> FluxKontextEditor:
    """Read-only editor (no LoRA). Tests that modify the transformer build their own."""
    return FluxKontextEditor(_tiny_cfg())


@pytest.fixture
def editor(tiny_path: str) -> FluxKontextEditor:
    return FluxKontextEditor(_tiny_cfg())


@pytest.fixture(scope="session")
def input_images() -> torch.Tensor:
    """Two smooth 64x64 RGB images in [0, 1]."""
    g = torch.Generator().manual_seed(7)
    coarse = torch.rand(2, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)


@pytest.fixture(scope="session")
def tiny_cfg() -> Callable[..., EditorConfig]:
    """EditorConfig factory for the tiny build (64x64, float32, 16 T5 tokens), with overrides."""
    return _tiny_cfg


def _run_pipeline(pipe: FluxKontextPipeline, image: torch.Tensor, prompt: str, steps: int, seed: int,
                  output_type: str) -> torch.Tensor:
    return pipe(image=image, prompt=prompt, height=SIZE, width=SIZE, num_inference_steps=steps,
                guidance_scale=2.5, generator=torch.Generator().manual_seed(seed), output_type=output_type,
                max_sequence_length=MAX_SEQ, max_area=SIZE * SIZE, _auto_resize=False).images


@pytest.fixture(scope="session")
def run_pipeline() -> Callable[..., torch.Tensor]:
    """diffusers' own Kontext edit at exactly 64x64 (its max_area and _auto_resize would re-size):
    run_pipeline(pipe, image, prompt, steps, seed, output_type) -> latents ("latent") or images ("pt")."""
    return _run_pipeline
