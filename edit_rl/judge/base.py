"""The interface every judge backend implements (vLLM, transformers), and its request types.

A backend sees token ids, never prompt text: the judge renders prompts with the model's own chat
template and tokenizer (the backend's ``processor``), so both backends receive identical ids.
Image placeholders are NOT expanded: each image is one ``<|image_pad|>`` token between
``<|vision_start|>`` and ``<|vision_end|>``, as the chat template writes it; the backend expands
it to the image's number of visual tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence, Union

import numpy as np
from PIL import Image

ImageLike = Union[Image.Image, np.ndarray]


@dataclass(frozen=True)
class TokenPrompt:
    """A prompt as token ids (one placeholder token per image) and its images, in order."""

    token_ids: tuple[int, ...]
    images: tuple[Image.Image, ...]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling for generated text. temperature 0: greedy. ``seed``: request i uses seed + i.
    ``stop``: strings at which a backend MAY stop early (the judge cuts the text itself)."""

    max_tokens: int
    temperature: float = 0.0
    seed: Optional[int] = None
    stop: tuple[str, ...] = ()


class JudgeBackend(Protocol):
    """Batched multimodal scoring and generation on one loaded model."""

    @property
    def processor(self) -> Any:
        """The model's HF processor (chat template, tokenizer, image processor)."""

    def next_token_logprobs(self, prompts: Sequence[TokenPrompt], token_ids: Sequence[int]) -> list[list[float]]:
        """For each prompt, the full-vocabulary log-probabilities of ``token_ids`` as the next token."""

    def generate(self, prompts: Sequence[TokenPrompt], params: GenerationParams) -> list[list[int]]:
        """For each prompt, the generated token ids (up to and excluding end-of-sequence)."""

    def close(self) -> None:
        """Free the model."""


def to_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image or a uint8 array (H, W, 3) or (H, W)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected a uint8 array (H, W, 3) or (H, W), got {array.dtype} {array.shape}")
    return Image.fromarray(array).convert("RGB")
