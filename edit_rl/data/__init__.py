"""Instruction chains: the records every data source produces, their Parquet form, the sampler,
and their EdiVal-CC turn specs. No Ray."""
from edit_rl.data.chain import ChainTurn, EditChain, encode_png
from edit_rl.data.parquet import (
    CHAIN_SCHEMA,
    ChainDataError,
    ChainReadResult,
    RowError,
    chain_from_row,
    chain_to_row,
    read_chains,
    write_chains,
)
from edit_rl.data.sampler import ChainSampler, epoch_order
from edit_rl.data.sources import load_training_chains
from edit_rl.data.turn_specs import cumulative_lists, turn_specs

__all__ = [
    "CHAIN_SCHEMA", "ChainDataError", "ChainReadResult", "ChainSampler", "ChainTurn", "EditChain", "RowError",
    "chain_from_row", "chain_to_row", "cumulative_lists", "encode_png", "epoch_order", "read_chains",
    "load_training_chains", "turn_specs", "write_chains",
]
