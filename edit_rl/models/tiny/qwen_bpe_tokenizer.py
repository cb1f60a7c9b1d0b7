"""A small Qwen2-style byte-level BPE tokenizer trained here on a fixed corpus (no files, no hub).

Used by the tiny FLUX.2-klein (Qwen3 text encoder) and Qwen-Image-Edit (Qwen2.5-VL text encoder)
builds. What matches the real Qwen tokenizers: the class (``Qwen2Tokenizer``, which is also
``Qwen2TokenizerFast`` in transformers 5), the NFC normaliser, the pre-tokenizer regex (digits
split one by one), the byte-level decoder and every Qwen special token. What differs: a vocabulary
of a few hundred tokens learnt from the corpus given, with the added tokens appended after it.
Deterministic: the same corpus and size give the same vocabulary and merges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer

# Qwen2 / Qwen2.5 / Qwen3 special tokens, in the real tokenizer's order.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
NON_SPECIAL_ADDED_TOKENS: tuple[str, ...] = ("<think>", "</think>")
PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                     r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")  # Qwen2Tokenizer's


def train_qwen_bpe_tokenizer(corpus: Sequence[str], vocab_size: int, chat_template: str,
                             model_max_length: int = 32768) -> Qwen2Tokenizer:
    """Byte-level BPE with ``vocab_size`` entries (256 bytes + merges) learnt from ``corpus``, then
    the Qwen added tokens; eos ``<|im_end|>``, pad ``<|endoftext|>`` as in Qwen's instruct models."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(corpus), trainer=trainer)
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    vocab = dict(trained["vocab"])
    for token in SPECIAL_TOKENS + NON_SPECIAL_ADDED_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               model_max_length=model_max_length, errors="replace")
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)},
                                 replace_extra_special_tokens=True)
    tokenizer.add_tokens(list(NON_SPECIAL_ADDED_TOKENS))
    tokenizer.chat_template = chat_template
    return tokenizer
