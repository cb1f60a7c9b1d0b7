"""DiffusionNFT parameter averaging: the "old" (rollout) policy and the evaluation EMA.

Sources: NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py`` (``return_decay`` and the
``tgt_param.data.copy_(tgt * decay + src * (1 - decay))`` update after each epoch);
``flow_grpo/ema.py`` ``EMAModuleWrapper.get_current_decay`` (decay=0.9 in the NFT scripts).
Edit-R1 ``scripts/train_nft_kontext.py`` uses the same three.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

# decay_type -> (flat, uprate, uphold), reference ``return_decay``
_DECAY_SCHEDULES: dict[int, tuple[int, float, float]] = {
    0: (0, 0.0, 0.0),
    1: (0, 0.001, 0.5),
    2: (75, 0.0075, 0.999),
}


def old_policy_decay(step: int, decay_type: int = 1) -> float:
    """Decay d of the old-policy update old <- d old + (1 - d) theta at optimizer step ``step``:

        d = 0                                   if step < flat
        d = min((step - flat) * uprate, uphold) otherwise

    with (flat, uprate, uphold) = type 0: (0, 0, 0) -> d = 0 (old = current policy);
    type 1 (default): (0, 0.001, 0.5); type 2: (75, 0.0075, 0.999).
    E.g. type 1: step 100 -> 0.1, step >= 500 -> 0.5; type 2: step 100 -> 0.1875.
    Reference: ``return_decay`` in NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py``
    (called with the global optimizer-step count after each epoch).
    """
    if decay_type not in _DECAY_SCHEDULES:
        raise ValueError(
            f"decay_type must be one of {sorted(_DECAY_SCHEDULES)}, got {decay_type!r}"
        )
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    flat, uprate, uphold = _DECAY_SCHEDULES[decay_type]
    if step < flat:
        return 0.0
    return min((step - flat) * uprate, uphold)


def soft_update_(old_params: Iterable[Tensor], new_params: Iterable[Tensor], decay: float) -> None:
    """In place, without autograd: old <- decay * old + (1 - decay) * new, tensor by tensor.

    ``old_params`` and ``new_params`` are paired in order (e.g. the "old" and "default" LoRA
    adapters' trainable parameters). ``new`` is moved to ``old``'s device and dtype. Raises
    ValueError on a length or shape mismatch, on an ``old`` that is the very same tensor as
    its ``new``, or on a decay outside [0, 1]; nothing is modified in that case.
    Reference: the end-of-epoch update in NVlabs/DiffusionNFT ``scripts/train_nft_sd3.py``.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    olds, news = list(old_params), list(new_params)
    if len(olds) != len(news):
        raise ValueError(f"got {len(olds)} old tensors but {len(news)} new tensors")
    for i, (old, new) in enumerate(zip(olds, news)):
        if not isinstance(old, Tensor) or not isinstance(new, Tensor):
            raise TypeError(
                f"pair {i}: expected tensors, got {type(old).__name__}, {type(new).__name__}"
            )
        if old.shape != new.shape:
            raise ValueError(
                f"pair {i}: old shape {tuple(old.shape)} != new shape {tuple(new.shape)}"
            )
        if old is new:
            raise ValueError(f"pair {i}: old and new are the same tensor")
    with torch.no_grad():
        for old, new in zip(olds, news):
            src = new.detach().to(device=old.device, dtype=old.dtype)
            old.mul_(decay).add_(src, alpha=1.0 - decay)


def ema_decay(step: int, max_decay: float = 0.9) -> float:
    """Evaluation-EMA decay min((1 + step) / (10 + step), max_decay) (``flow_grpo/ema.py``
    ``get_current_decay``; the NFT scripts build the EMA with decay=0.9)."""
    return min((1 + step) / (10 + step), max_decay)
