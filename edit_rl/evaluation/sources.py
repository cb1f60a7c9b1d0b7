"""The chains an evaluation runs on, from the source its config names (``evaluation.source``)."""
from __future__ import annotations

from dataclasses import dataclass

from edit_rl.config.schema import DataConfig, EvaluationConfig
from edit_rl.data.chain import EditChain
from edit_rl.data.parquet import RowError, read_chains


@dataclass(frozen=True)
class EvalData:
    """The chains to evaluate (file order, cut to ``max_chains``), the rows skipped as unusable,
    and a one-line description for the report."""

    chains: tuple[EditChain, ...]
    errors: tuple[RowError, ...]
    description: str


def load_eval_chains(cfg: EvaluationConfig, data: DataConfig) -> EvalData:
    """synthetic: the shapes world's held-out split (all edit kinds), disjoint from the run's training
    chains (``data.synthetic_train_chains`` of ``data.synthetic_edit_types``); parquet: our chain schema; edival: EdiVal's instruction file and its images
    (:func:`edit_rl.evaluation.edival_csv.load_edival_chains`). Bad rows are reported, not raised."""
    cfg.validate()
    if cfg.source == "synthetic":
        from edit_rl.synthetic.splits import heldout_split

        heldout = heldout_split(data, cfg.synthetic_chains)
        chains: tuple[EditChain, ...] = tuple(heldout)
        errors: tuple[RowError, ...] = ()
        where = (f"synthetic held-out split ({data.synthetic_image_size} px, disjoint from the "
                 f"{data.synthetic_train_chains} training chains)")
    elif cfg.source == "parquet":
        result = read_chains(str(cfg.path))
        chains, errors, where = result.chains, result.errors, f"Parquet `{cfg.path}`"
    else:
        from edit_rl.evaluation.edival_csv import load_edival_chains

        loaded = load_edival_chains(str(cfg.path), str(cfg.image_dir))
        chains, errors = loaded.chains, loaded.errors
        where = f"EdiVal `{cfg.path}` ({loaded.num_rows} rows), images `{cfg.image_dir}`"
    if cfg.max_chains:
        chains = chains[:cfg.max_chains]
    return EvalData(chains, errors, where)
