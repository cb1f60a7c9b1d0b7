"""Deterministic, resumable sampling of chains for rollouts."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from edit_rl.data.chain import EditChain


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The visiting order of epoch ``epoch``: a permutation of range(num_items) drawn by numpy's
    PCG64 seeded with (seed, epoch), so every epoch has its own order and any epoch can be rebuilt
    from (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)


def chain_ids_digest(chain_ids: Sequence[str]) -> str:
    """A short fingerprint of the chain ids in order (guards a resume against other data)."""
    return hashlib.sha256("\n".join(chain_ids).encode()).hexdigest()[:16]


class ChainSampler:
    """Walks chains in epoch-shuffled order (:func:`epoch_order`), skipping banned ids.

    ``next(n, banned)`` returns the next n distinct chains whose id is not in ``banned``,
    continuing into the following epoch when one runs out. Skipped chains are consumed: banned
    ones, and one that the new epoch brings back while this call already holds it (a step's
    chains must be distinct: one group per chain). The order does not depend on the ban list:
    the same position always holds the same chain. ``state_dict`` /
    ``load_state_dict`` save and restore (epoch, position) for an exact resume.
    """

    def __init__(self, chains: Sequence[EditChain], seed: int) -> None:
        if not chains:
            raise ValueError("ChainSampler needs at least one chain")
        ids = [c.chain_id for c in chains]
        if len(set(ids)) != len(ids):
            raise ValueError("chain ids must be unique")
        self.chains = tuple(chains)
        self.seed = int(seed)
        self.epoch = 0
        self.position = 0
        self._digest = chain_ids_digest(ids)
        self._order: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.chains)

    def _current_order(self) -> np.ndarray:
        if self._order is None:
            self._order = epoch_order(len(self.chains), self.seed, self.epoch)
        return self._order

    def _advance(self) -> EditChain:
        chain = self.chains[int(self._current_order()[self.position])]
        self.position += 1
        if self.position == len(self.chains):
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        return chain

    def next(self, n: int, banned: frozenset[str] | set[str] = frozenset()) -> list[EditChain]:
        """The next ``n`` distinct chains not in ``banned``. Raises ValueError (and consumes
        nothing) if fewer than ``n`` chains are not banned."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        allowed = sum(c.chain_id not in banned for c in self.chains)
        if n > allowed:
            which = "all" if allowed == 0 else f"{len(self.chains) - allowed} of the"
            raise ValueError(f"{n} distinct chains requested, but {which} {len(self.chains)} chains are banned "
                             f"({allowed} left)")
        out: list[EditChain] = []
        taken: set[str] = set()
        while len(out) < n:
            chain = self._advance()
            if chain.chain_id not in banned and chain.chain_id not in taken:
                out.append(chain)
                taken.add(chain.chain_id)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position,
                "num_chains": len(self.chains), "chain_ids_digest": self._digest}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved position. The seed and the chains (ids, in order) must match."""
        if state["num_chains"] != len(self.chains) or state["chain_ids_digest"] != self._digest:
            raise ValueError(f"sampler state was saved over other chains ({state['num_chains']} chains, "
                             f"digest {state['chain_ids_digest']}; here {len(self.chains)}, {self._digest})")
        if state["seed"] != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this sampler {self.seed}")
        if not 0 <= state["position"] < len(self.chains) or state["epoch"] < 0:
            raise ValueError(f"sampler state out of range: epoch {state['epoch']}, position {state['position']}")
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None
