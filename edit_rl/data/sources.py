"""The training chains a run uses, from the source its config names (``data.source``)."""
from __future__ import annotations

import logging
from collections import Counter

from edit_rl.config.schema import DataConfig
from edit_rl.data.chain import EditChain
from edit_rl.data.parquet import read_chains

log = logging.getLogger(__name__)


def load_training_chains(cfg: DataConfig, num_turns: int | None = None) -> list[EditChain]:
    """synthetic: the shapes world's train split (from ``data.synthetic_edit_types`` only, when set); parquet: our schema (bad rows reported and
    skipped). The EdiVal CSV is an evaluation source (jobs.evaluate), not a training one. With
    ``num_turns`` (rollout.num_turns), only the chains :func:`usable_chains` keeps."""
    chains = _read_training_chains(cfg)
    if num_turns is None:
        return chains
    origin = "the synthetic train split" if cfg.source == "synthetic" else str(cfg.train_path)
    return usable_chains(chains, num_turns, cfg.image_dir, origin)


def usable_chains(chains: list[EditChain], num_turns: int, image_dir: str | None, origin: str) -> list[EditChain]:
    """The chains of ``num_turns`` turns whose image decodes, checked before anything starts. A
    chain with another number of turns, or whose image is missing or does not decode, is skipped
    with a warning naming it, and the skips are counted in one more warning. ValueError when no
    chain has ``num_turns`` turns (rollout.num_turns does not fit the data) or none is usable."""
    lengths = Counter(c.num_turns for c in chains)
    if num_turns not in lengths:
        found = ", ".join(f"{n} with {t} turns" for t, n in sorted(lengths.items()))
        raise ValueError(f"rollout.num_turns={num_turns}, but no chain of {origin} has {num_turns} turns ({found}); "
                         "set rollout.num_turns to the data's number of turns")
    kept, skipped = [], []
    for chain in chains:
        if chain.num_turns != num_turns:
            skipped.append(f"chain {chain.chain_id!r}: {chain.num_turns} turns, rollout.num_turns={num_turns}")
            continue
        try:
            chain.load_image(image_dir)
        except OSError as err:
            skipped.append(str(err))
            continue
        kept.append(chain)
    for reason in skipped:
        log.warning("%s: skipped %s", origin, reason)
    if skipped:
        log.warning("%s: %d of %d chains skipped (see above)", origin, len(skipped), len(chains))
    if not kept:
        raise ValueError(f"{origin}: no usable training chain; all {len(chains)} skipped (first: {skipped[0]})")
    return kept


def _read_training_chains(cfg: DataConfig) -> list[EditChain]:
    if cfg.source == "synthetic":
        from edit_rl.synthetic.splits import train_split

        return train_split(cfg)
    if cfg.source == "parquet":
        result = read_chains(cfg.train_path)
        for error in result.errors:
            log.warning("%s row %d skipped: %s", cfg.train_path, error.row, error.reason)
        if result.errors:
            log.warning("%s: %d of %d rows unusable (see above)", cfg.train_path, len(result.errors),
                        len(result.errors) + len(result.chains))
        return list(result.chains)
    raise ValueError(f"data.source={cfg.source!r} is not a training source (use 'synthetic' or 'parquet')")
