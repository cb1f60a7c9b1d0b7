"""Chains as Parquet: one row per chain, the turns as a list of structs.

Schema (``CHAIN_SCHEMA``)::

    chain_id   string            not null, unique within a file
    source     string            not null ("synthetic", "edival", ...)
    image_path string            null when the image is inline
    image_png  binary            null when the image is a file
    turns      list<struct<
        instruction       string        not null
        task_type         string        not null
        unchanged_objects list<string>  the turn's own lists (edit_rl.data.chain)
        all_objects       list<string>
        bg_consistency    bool          not null
        target_state      string        JSON of the symbolic target (synthetic), else null
    >>

:func:`read_chains` validates row by row: a malformed row (missing or mistyped field, no
turns, no image, a duplicate chain id, ...) is reported as a :class:`RowError` with its index
and reason, and the other rows are kept. It raises :class:`ChainDataError` only when the file
cannot be read at all, lacks a required column, or has no usable row.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from edit_rl.data.chain import ChainTurn, EditChain

TURN_TYPE = pa.struct([
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("task_type", pa.string(), nullable=False),
    pa.field("unchanged_objects", pa.list_(pa.string())),
    pa.field("all_objects", pa.list_(pa.string())),
    pa.field("bg_consistency", pa.bool_(), nullable=False),
    pa.field("target_state", pa.string()),
])
CHAIN_SCHEMA = pa.schema([
    pa.field("chain_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("image_path", pa.string()),
    pa.field("image_png", pa.binary()),
    pa.field("turns", pa.list_(TURN_TYPE)),
])
REQUIRED_COLUMNS: tuple[str, ...] = ("chain_id", "source", "turns")
MAX_REPORTED_ERRORS = 5  # in the ChainDataError message


class ChainDataError(ValueError):
    """A chain file gave no usable chain."""


@dataclass(frozen=True)
class RowError:
    """A malformed row: its index in the file and why it was skipped."""

    row: int
    reason: str


@dataclass(frozen=True)
class ChainReadResult:
    """The usable chains of a file (in file order) and the rows that were skipped."""

    path: str
    chains: tuple[EditChain, ...]
    errors: tuple[RowError, ...]

    @property
    def num_rows(self) -> int:
        return len(self.chains) + len(self.errors)


def chain_to_row(chain: EditChain) -> dict[str, Any]:
    """The Parquet row of a chain (plain Python values in ``CHAIN_SCHEMA``'s layout)."""
    return {
        "chain_id": chain.chain_id, "source": chain.source, "image_path": chain.image_path,
        "image_png": chain.image_png,
        "turns": [{"instruction": t.instruction, "task_type": t.task_type,
                   "unchanged_objects": list(t.unchanged_objects), "all_objects": list(t.all_objects),
                   "bg_consistency": t.bg_consistency, "target_state": t.target_state} for t in chain.turns],
    }


def write_chains(chains: Sequence[EditChain], path: str | Path, row_group_size: int = 1024) -> Path:
    """Write chains to one Parquet file with ``CHAIN_SCHEMA`` (parent folders created).
    Duplicate chain ids are refused."""
    seen: set[str] = set()
    for chain in chains:
        if chain.chain_id in seen:
            raise ValueError(f"duplicate chain_id {chain.chain_id!r}")
        seen.add(chain.chain_id)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([chain_to_row(c) for c in chains], schema=CHAIN_SCHEMA)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def _turn_from_value(value: Any, index: int) -> ChainTurn:
    if not isinstance(value, dict):
        raise ValueError(f"turn {index} is not a struct")
    missing = [name for name in ("instruction", "task_type", "unchanged_objects", "all_objects", "bg_consistency")
               if value.get(name) is None]
    if missing:
        raise ValueError(f"turn {index} lacks {', '.join(missing)}")
    try:
        return ChainTurn(instruction=value["instruction"], task_type=value["task_type"],
                         unchanged_objects=value["unchanged_objects"], all_objects=value["all_objects"],
                         bg_consistency=value["bg_consistency"], target_state=value.get("target_state"))
    except ValueError as err:
        raise ValueError(f"turn {index}: {err}") from None


def chain_from_row(row: dict[str, Any]) -> EditChain:
    """An :class:`EditChain` from a row dict; ValueError with the reason if malformed."""
    turns = row.get("turns")
    if turns is None or not isinstance(turns, list):
        raise ValueError("turns is missing or not a list")
    if not turns:
        raise ValueError("no turns")
    parsed = tuple(_turn_from_value(value, k) for k, value in enumerate(turns))
    return EditChain(chain_id=row.get("chain_id"), turns=parsed, image_path=row.get("image_path"),  # type: ignore[arg-type]
                     image_png=row.get("image_png"), source=row.get("source"))  # type: ignore[arg-type]


def read_chains(path: str | Path) -> ChainReadResult:
    """Every usable chain of a Parquet file, and a :class:`RowError` for each malformed row
    (a repeated chain id is an error on its second and later rows). Raises
    :class:`ChainDataError` if the file cannot be read, lacks a required column, or has no
    usable row. ``path``: a local path, or a URI that pyarrow reads (``s3://``, ``gs://``,
    ``hdfs://``), e.g. where a cluster's nodes share no filesystem."""
    path = str(path) if "://" in str(path) else Path(path)  # Path would fold "s3://" into "s3:/"
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise ChainDataError(f"{path}: cannot read chains: {err}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ChainDataError(f"{path}: missing column(s) {missing}; a chain file needs {list(REQUIRED_COLUMNS)}")
    chains: list[EditChain] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(table.to_pylist()):
        try:
            chain = chain_from_row(row)
        except ValueError as err:
            errors.append(RowError(index, str(err)))
            continue
        if chain.chain_id in seen:
            errors.append(RowError(index, f"duplicate chain_id {chain.chain_id!r} (first at row {seen[chain.chain_id]})"))
            continue
        seen[chain.chain_id] = index
        chains.append(chain)
    if not chains:
        shown = "; ".join(f"row {e.row}: {e.reason}" for e in errors[:MAX_REPORTED_ERRORS])
        raise ChainDataError(f"{path}: no usable chain in {len(errors)} row(s)" + (f" ({shown})" if shown else ""))
    return ChainReadResult(str(path), tuple(chains), tuple(errors))
