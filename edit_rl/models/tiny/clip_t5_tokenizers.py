"""Tokenizers built from in-code vocabularies (no files, no hub): CLIP byte-level BPE and T5 Unigram.

transformers 5.x builds both from arguments: ``CLIPTokenizer(vocab=..., merges=...)`` and
``T5TokenizerFast(vocab=[(piece, score), ...])`` (docs/install.md). They save and load
with ``save_pretrained`` / ``from_pretrained`` like the real ones.
"""

from __future__ import annotations

import string

from transformers import CLIPTokenizer, T5TokenizerFast

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"


def byte_level_alphabet() -> list[str]:
    """The 256 printable characters that byte-level BPE (GPT-2, CLIP) uses for the bytes 0..255.

    Bytes that are printable Latin-1 map to themselves; the others, in order, to chr(256 + k).
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars: list[str] = []
    extra = 0
    for byte in range(256):
        if byte in printable:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """Character-level CLIP BPE: every byte with and without the end-of-word suffix, no merges.

    Like the real CLIP vocabulary, the two special tokens come last (eos has the largest id).
    """
    vocab: dict[str, int] = {}
    for char in byte_level_alphabet():
        vocab[char] = len(vocab)
    for char in byte_level_alphabet():
        vocab[char + "</w>"] = len(vocab)
    vocab[CLIP_BOS] = len(vocab)
    vocab[CLIP_EOS] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def tiny_t5_tokenizer(model_max_length: int = 512) -> T5TokenizerFast:
    """Character-level T5 Unigram: <pad>=0, </s>=1, <unk>=2, the word-start marker, ASCII pieces."""
    chars = string.ascii_letters + string.digits + string.punctuation
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -2.5) for c in chars]
    pieces += [(c, -3.0) for c in chars]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
