"""The training chains a run uses, from the source its config names (``data.source``)."""
from __future__ import annotations

import logging

from edit_rl.config.schema import DataConfig
from edit_rl.data.chain import EditChain
from edit_rl.data.parquet import read_chains

log = logging.getLogger(__name__)


def load_training_chains(cfg: DataConfig) -> list[EditChain]:
    """synthetic: the shapes world's train split (from ``data.synthetic_edit_types`` only, when set); parquet: our schema (bad rows reported and
    skipped). The EdiVal CSV is an evaluation source (jobs.evaluate), not a training one."""
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
