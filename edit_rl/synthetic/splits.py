"""Train and held-out synthetic chains from disjoint seed sets, with no chain in both."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edit_rl.config.schema import DataConfig
from edit_rl.data.chain import EditChain
from edit_rl.synthetic.edits import EDIT_TYPES
from edit_rl.synthetic.generate import NUM_TURNS, generate_chain
from edit_rl.synthetic.world import Geometry

Split = Literal["train", "heldout"]
_SPLIT_PARITY = {"train": 0, "heldout": 1}
MAX_DRAWS_PER_CHAIN = 100


def split_seed(split: Split, index: int) -> int:
    """Seed of the index-th candidate chain of a split: train uses even seeds, held-out odd ones,
    so the two seed sets are disjoint for any sizes."""
    return 2 * index + _SPLIT_PARITY[split]


def chain_key(chain: EditChain) -> tuple[bytes | None, tuple[str, ...]]:
    """What makes two chains the same task: the reference image and the instructions."""
    return (chain.image_png, chain.instructions)


def make_split(split: Split, count: int, geometry: Geometry = Geometry(), num_turns: int = NUM_TURNS,
               edit_types: Sequence[str] = EDIT_TYPES, exclude: frozenset = frozenset()) -> list[EditChain]:
    """``count`` chains from the split's seeds in order, skipping any chain whose
    :func:`chain_key` is in ``exclude`` or already taken (different seeds can draw the same chain)."""
    chains: list[EditChain] = []
    taken = set(exclude)
    index = 0
    while len(chains) < count:
        if index > MAX_DRAWS_PER_CHAIN * count:
            raise RuntimeError(f"{split}: only {len(chains)} distinct chains in {index} draws, {count} asked")
        chain = generate_chain(split_seed(split, index), num_turns, geometry, edit_types)
        index += 1
        key = chain_key(chain)
        if key not in taken:
            taken.add(key)
            chains.append(chain)
    return chains


def train_split(data: DataConfig) -> list[EditChain]:
    """The training chains of a run's ``data`` config: ``data.synthetic_train_chains`` chains of the
    train seeds, drawn from ``data.synthetic_edit_types`` (all kinds when None)."""
    return make_split("train", data.synthetic_train_chains, Geometry(data.synthetic_image_size), NUM_TURNS,
                      data.synthetic_edit_types or EDIT_TYPES)


def heldout_split(data: DataConfig, count: int) -> list[EditChain]:
    """``count`` held-out chains (all edit kinds, whatever the training draws from), none equal to a
    training chain of ``data``; with all kinds trained, the same as :func:`make_splits`' held-out."""
    exclude = frozenset(chain_key(c) for c in train_split(data))
    return make_split("heldout", count, Geometry(data.synthetic_image_size), NUM_TURNS, exclude=exclude)


def make_splits(num_train: int, num_heldout: int, geometry: Geometry = Geometry(), num_turns: int = NUM_TURNS,
                edit_types: Sequence[str] = EDIT_TYPES) -> tuple[list[EditChain], list[EditChain]]:
    """(train, held-out): disjoint seeds, and no held-out chain equal to a train chain."""
    train = make_split("train", num_train, geometry, num_turns, edit_types)
    heldout = make_split("heldout", num_heldout, geometry, num_turns, edit_types,
                         exclude=frozenset(chain_key(c) for c in train))
    return train, heldout
