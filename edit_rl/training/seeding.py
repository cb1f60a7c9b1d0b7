"""Every random draw of the learner comes from a seed named by (run seed, step, what it is for):
a sample draws the same noise on whichever rank trains it, and a resumed run repeats an
uninterrupted one without saving generator states."""

from __future__ import annotations

import hashlib

import torch


def derived_seed(*parts: object) -> int:
    """A 63-bit seed from its parts (sha256 of their text, so stable across processes and runs)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def sample_generators(seed: int, step: int, keys: tuple[str, ...]) -> list[torch.Generator]:
    """One CPU generator per sample key (`edit_rl.training.micro_batch.sample_key`)."""
    return [torch.Generator().manual_seed(derived_seed(seed, step, key)) for key in keys]
