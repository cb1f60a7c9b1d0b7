"""Shared fixtures for the judge tests: the tiny Qwen3-VL, resolved by name as the real one is."""

import pytest
from transformers import AutoProcessor

from edit_rl.models import resolve_model


@pytest.fixture(scope="session")
def tiny_qwen3_vl_path() -> str:
    """The tiny Qwen3-VL folder (built into the tiny-model cache on first use)."""
    return resolve_model("tiny/qwen3-vl")


@pytest.fixture(scope="session")
def tiny_processor(tiny_qwen3_vl_path):
    return AutoProcessor.from_pretrained(tiny_qwen3_vl_path)
