"""A tiny random-weight Grounding DINO saved as a local folder that loads like
`IDEA-Research/grounding-dino-tiny` (``AutoModelForZeroShotObjectDetection`` + ``AutoProcessor``).

Deterministic for a given seed. Swin backbone and BERT text encoder are passed as config
OBJECTS (a backbone *name* would trigger a hub lookup). The model hard-codes the BERT ids
[PAD]=0, [CLS]=101, [SEP]=102, "."=1012, "?"=1029, so the local WordPiece vocab puts those
tokens at exactly those ids. The image processor is the PIL one with a smaller resize than the
real model's 800/1333 so that tests stay fast; the loading and post-processing code is the same.
"""
from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertTokenizerFast,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoImageProcessorPil,
    GroundingDinoProcessor,
    SwinConfig,
)

# Ids hard-coded by transformers' Grounding DINO for the bert-base-uncased vocabulary.
SPECIAL_IDS: dict[str, int] = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
                               ".": 1012, "?": 1029}
_WORDS = ["red", "green", "blue", "yellow", "white", "black", "square", "circle", "cat", "dog",
          "bench", "tree", "car", "person", "bag", "ball", "box", "leaf", "pattern", "sky"]
IMAGE_SHORTEST_EDGE = 96
IMAGE_LONGEST_EDGE = 160


def tiny_bert_vocab() -> list[str]:
    """WordPiece vocab (index = id) with the special tokens at bert-base-uncased's ids, every
    lowercase letter and digit (plus their ``##`` continuations, so any word tokenises) and a
    few whole words; unused slots are ``[unusedN]``."""
    pieces = list(string.ascii_lowercase + string.digits)
    fill = pieces + ["##" + p for p in pieces] + _WORDS + [",", "-", "'", "!"]
    size = max(SPECIAL_IDS.values()) + 1 + len(fill)
    vocab: list[str | None] = [None] * size
    for token, idx in SPECIAL_IDS.items():
        vocab[idx] = token
    free = (i for i in range(size) if vocab[i] is None)
    for token in fill:
        vocab[next(free)] = token
    return [tok if tok is not None else f"[unused{i}]" for i, tok in enumerate(vocab)]


def tiny_grounding_dino_config(vocab_size: int) -> GroundingDinoConfig:
    """~0.2M parameters: Swin (embed 16, depths 1/1/1), BERT (hidden 32, 1 layer), d_model 32,
    3 feature levels (4 collapse to 1x1 maps on small images), 2 decoder layers (1 breaks the
    box-head weight tying), 8 queries (at most 8 boxes per image and prompt)."""
    backbone = SwinConfig(image_size=224, patch_size=4, embed_dim=16, depths=[1, 1, 1],
                          num_heads=[1, 2, 4], window_size=7, out_features=["stage1", "stage2", "stage3"])
    text = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=256)
    return GroundingDinoConfig(backbone_config=backbone, text_config=text, d_model=32, num_queries=8,
                               encoder_layers=1, encoder_ffn_dim=64, encoder_attention_heads=2,
                               decoder_layers=2, decoder_ffn_dim=64, decoder_attention_heads=2,
                               num_feature_levels=3, encoder_n_points=2, decoder_n_points=2)


def build_tiny_grounding_dino(folder: str | Path, seed: int = 0) -> None:
    """Write model, tokenizer and processor to ``folder`` (the registry's builder signature)."""
    folder = Path(folder)
    vocab = tiny_bert_vocab()
    tokenizer = BertTokenizerFast(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)
    wrong = {t: i for t, i in SPECIAL_IDS.items() if tokenizer.convert_tokens_to_ids(t) != i}
    if wrong:
        raise RuntimeError(f"tokenizer ids differ from the ids Grounding DINO hard-codes: {wrong}")
    image_processor = GroundingDinoImageProcessorPil(
        size={"shortest_edge": IMAGE_SHORTEST_EDGE, "longest_edge": IMAGE_LONGEST_EDGE})
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG untouched
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(tiny_grounding_dino_config(len(vocab))).eval()
    model.save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
