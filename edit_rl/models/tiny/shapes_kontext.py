"""The untrained miniature FLUX.1-Kontext of the shapes world ("tiny/shapes-kontext").

Sizes from docs/shapes-world.md: a ``FluxTransformer2DModel`` on 4 x 4 RGB pixel
patches (48 channels), hidden 128 = 4 heads of 32, rope axes (8, 12, 12), 3 double + 3 single
blocks, guidance embedding; a word-level text encoder of width 128 over the world's vocabulary
(16 words at most). FLUX.1-Kontext-dev's scheduler config. About 2.65M parameters.
``experiments/shapes/pretrain_editor.py`` trains it into the shipped "shapes/base".
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel

from edit_rl.editors.pixel_patches import TOKEN_CHANNELS
from edit_rl.editors.word_text import PAD, UNK, WordTextEncoder, WordTokenizer
from edit_rl.models.tiny.flux_kontext import tiny_scheduler
from edit_rl.synthetic.world import BACKGROUNDS, OBJECT_COLORS, RELATIONS, SHAPES, SIZES

HIDDEN = 128
HEAD_DIM = 32
MAX_WORDS = 16
SEED = 20261123
# The fixed words of the world's instruction templates (edit_rl.synthetic.grammar).
TEMPLATE_WORDS = ("change", "the", "color", "of", "to", "remove", "add", "a", "an", "replace", "with",
                  "move", "background", "make")


def shapes_vocabulary() -> tuple[str, ...]:
    """PAD, UNK, then every word the world's instructions use, in a fixed order."""
    words = list(TEMPLATE_WORDS) + [w for r in RELATIONS for w in r.split()]
    words += [*SIZES, *OBJECT_COLORS, *SHAPES, *BACKGROUNDS]
    return (PAD, UNK, *dict.fromkeys(words))


def shapes_transformer(hidden: int = HIDDEN) -> FluxTransformer2DModel:
    """FLUX.1's transformer at width ``hidden`` (heads of 32), text width ``hidden``."""
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=TOKEN_CHANNELS,
        num_layers=3,
        num_single_layers=3,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=hidden // HEAD_DIM,
        joint_attention_dim=hidden,
        pooled_projection_dim=hidden,
        guidance_embeds=True,
        axes_dims_rope=(8, 12, 12),
    )


def build_tiny_shapes_kontext(folder: Path, seed: int = SEED, hidden: int = HIDDEN) -> None:
    """Write the untrained model folder (layout: `edit_rl.editors.shapes_kontext`), weights seeded."""
    tokenizer = WordTokenizer(shapes_vocabulary(), MAX_WORDS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = shapes_transformer(hidden)
        text_encoder = WordTextEncoder(vocab_size=len(tokenizer.vocab), max_length=MAX_WORDS, hidden_size=hidden)
    folder = Path(folder)
    transformer.save_pretrained(str(folder / "transformer"))
    text_encoder.save_pretrained(str(folder / "text_encoder"))
    tokenizer.save(folder / "tokenizer")
    tiny_scheduler().save_pretrained(str(folder / "scheduler"))
