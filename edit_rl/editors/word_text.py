"""A word-level text encoder for small closed-vocabulary worlds (the synthetic shapes editor).

FLUX gives every text token the position id [0, 0, 0], so its transformer sees text order only
through the text encoder (T5). Here the encoder is a learned word embedding plus a learned
position embedding ("left of" vs "right of" needs word order); the pooled vector (CLIP's role
in FLUX) is the mean over the real words. Like FLUX's T5 call, the sequence is padded to a fixed
length with no attention mask in the transformer. ``WordTextEncoder`` is a diffusers
``ModelMixin`` so it saves and loads (``from_pretrained(folder, subfolder=..., dtype=...)``)
like the transformer; ``WordTokenizer`` is the vocabulary (a JSON file).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import Tensor, nn

PAD, UNK = "<pad>", "<unk>"
VOCAB_FILE = "vocab.json"


def split_words(text: str) -> list[str]:
    """Lower-case words, punctuation (. ,) dropped: "Remove the red circle." -> [remove, the, red, circle]."""
    return text.lower().replace(".", " ").replace(",", " ").split()


@dataclass(frozen=True)
class WordTokenizer:
    """Words -> ids (PAD = 0, UNK = 1), padded / truncated to ``max_length``, with a mask of real words."""

    vocab: tuple[str, ...]
    max_length: int

    def __post_init__(self) -> None:
        if self.vocab[:2] != (PAD, UNK):
            raise ValueError(f"the vocabulary must start with {PAD!r}, {UNK!r}, got {self.vocab[:2]}")
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("the vocabulary has duplicate words")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")

    @cached_property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def __call__(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(ids (B, max_length) long, mask (B, max_length) bool); unknown words -> UNK."""
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        for row, text in enumerate(texts):
            words = split_words(text)[: self.max_length]
            ids[row, : len(words)] = torch.tensor([self.index.get(w, 1) for w in words], dtype=torch.long)
        return ids, ids != 0

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / VOCAB_FILE).write_text(json.dumps({"vocab": list(self.vocab), "max_length": self.max_length},
                                                    indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> "WordTokenizer":
        data = json.loads((Path(folder) / VOCAB_FILE).read_text())
        return cls(tuple(data["vocab"]), int(data["max_length"]))


class WordTextEncoder(ModelMixin, ConfigMixin):
    """ids (B, L), mask (B, L) -> (sequence (B, L, D) = word + position embedding, pooled (B, D) = masked mean)."""

    @register_to_config
    def __init__(self, vocab_size: int, max_length: int, hidden_size: int) -> None:
        super().__init__()
        self.word_embedding = nn.Embedding(vocab_size, hidden_size)
        self.position_embedding = nn.Embedding(max_length, hidden_size)

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        positions = torch.arange(ids.shape[1], device=ids.device)
        sequence = self.word_embedding(ids) + self.position_embedding(positions)[None]
        weights = mask.to(sequence.dtype)[..., None]
        pooled = (sequence * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return sequence, pooled
