"""Every score of an evaluation, one row per (mode, chain, turn), as Parquet (``scores.parquet``).

Schema (``SCORES_SCHEMA``)::

    mode           string   "multi_turn" (turn t edits turn t-1's output) or "single_turn" (the input)
    chain_id       string
    turn           int32    1-based
    task_type      string
    instruction    string
    judge_score    float64  the single-turn judge's score, on its scale (1-5)
    judge_fallback bool     the judge's answer was unreadable (the score is its fallback)
    success        bool     judge_score >= the run's success threshold (metadata)
    cc             float64  the pair's EdiVal-CC (mean of the terms present); null if none
    cc_object      float64  object term (cosine); null if not measured
    cc_background  float64  background term (cosine); null if not measured
    cc_counted     bool     counted in the benchmark's EdiVal-CC (no background change up to this turn)

The file's schema metadata (key ``edit_rl.evaluation``) holds the run's :class:`EvalMeta` as JSON:
label, threshold, models, LoRA, data, seed. Every table of the report is recomputed from this file
(:func:`edit_rl.evaluation.summary.summarize`), with any other threshold if wanted.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

MODES: tuple[str, ...] = ("multi_turn", "single_turn")
META_KEY = b"edit_rl.evaluation"
SCORES_FILE = "scores.parquet"

SCORES_SCHEMA = pa.schema([
    pa.field("mode", pa.string(), nullable=False),
    pa.field("chain_id", pa.string(), nullable=False),
    pa.field("turn", pa.int32(), nullable=False),
    pa.field("task_type", pa.string(), nullable=False),
    pa.field("instruction", pa.string(), nullable=False),
    pa.field("judge_score", pa.float64(), nullable=False),
    pa.field("judge_fallback", pa.bool_(), nullable=False),
    pa.field("success", pa.bool_(), nullable=False),
    pa.field("cc", pa.float64()),
    pa.field("cc_object", pa.float64()),
    pa.field("cc_background", pa.float64()),
    pa.field("cc_counted", pa.bool_(), nullable=False),
])


@dataclass(frozen=True)
class TurnRecord:
    """One scored turn (the columns of ``SCORES_SCHEMA``)."""

    mode: str
    chain_id: str
    turn: int
    task_type: str
    instruction: str
    judge_score: float
    judge_fallback: bool
    success: bool
    cc: Optional[float]
    cc_object: Optional[float]
    cc_background: Optional[float]
    cc_counted: bool

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.turn < 1:
            raise ValueError(f"turn is 1-based, got {self.turn}")


@dataclass(frozen=True)
class EvalMeta:
    """What was evaluated and how: shown in the report, kept in the Parquet file."""

    label: str
    success_threshold: float
    editor: str
    lora: Optional[str]
    judge: str
    consistency: str
    source: str
    num_chains: int
    skipped_rows: int
    seed: int
    sampler: str
    modes: tuple[str, ...]
    seconds: float = 0.0


def write_scores(records: Sequence[TurnRecord], meta: EvalMeta, path: str | Path) -> Path:
    """Write the records and the run's metadata to one Parquet file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([dataclasses.asdict(r) for r in records], schema=SCORES_SCHEMA)
    table = table.replace_schema_metadata({META_KEY: json.dumps(dataclasses.asdict(meta)).encode()})
    pq.write_table(table, path)
    return path


def read_scores(path: str | Path) -> tuple[list[TurnRecord], EvalMeta]:
    """The records and metadata of a ``scores.parquet`` (or of the evaluation folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_FILE
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not an evaluation scores file (no {META_KEY.decode()!r} metadata)")
    fields = json.loads(raw)
    fields["modes"] = tuple(fields["modes"])
    records = [TurnRecord(**row) for row in table.select(SCORES_SCHEMA.names).to_pylist()]
    return records, EvalMeta(**fields)
