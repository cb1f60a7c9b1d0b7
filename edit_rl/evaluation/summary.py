"""An evaluation's records -> the numbers of the report: per turn, per edit type, per mode.

Multi-turn mode (each turn edits the previous output): EdiVal-IF is the cumulative success (a
chain counts at turn t only if turns 1..t succeeded), marginal success is turn t's own. Single-turn
mode (each instruction applied to the input image): the turns are independent edits, so its IF
column is the marginal success. CC is EdiVal-CC of the reference-vs-output pairs, Overall
sqrt(IF x CC) (:mod:`edit_rl.evaluation.metrics`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from edit_rl.evaluation.metrics import (
    CCTerms,
    edival_cc,
    edival_if,
    edival_overall,
    marginal_success,
    success_drop,
)
from edit_rl.evaluation.scores import MODES, EvalMeta, TurnRecord


@dataclass(frozen=True)
class TurnMetrics:
    """One turn of one mode; percentages. ``cc_pairs``: pairs counted in CC."""

    turn: int
    num_chains: int
    edival_if: float
    marginal: float
    cc: Optional[float]
    cc_pairs: int
    overall: Optional[float]
    mean_score: float


@dataclass(frozen=True)
class TypeMetrics:
    """One edit type of one mode over all its turns: marginal success (pooled, and per turn; None
    where no turn t has the type), EdiVal-CC of its pairs, mean judge score."""

    task_type: str
    num_turns: int
    success: float
    success_per_turn: tuple[Optional[float], ...]
    cc: Optional[float]
    mean_score: float


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    num_chains: int
    turns: tuple[TurnMetrics, ...]
    types: tuple[TypeMetrics, ...]
    drop: float  # marginal success, turn 1 minus last turn (MT-EditFlow Table 7)
    fallbacks: int  # turns whose judge answer was unreadable


@dataclass(frozen=True)
class RunSummary:
    meta: EvalMeta
    modes: dict[str, ModeSummary]


def _terms(record: TurnRecord) -> CCTerms:
    return CCTerms(record.cc_object, record.cc_background, record.cc_counted)


def chains_of(records: Sequence[TurnRecord]) -> dict[str, list[TurnRecord]]:
    """One mode's records per chain (order of first appearance), turns in order; ValueError if a
    chain's turns are not exactly 1..T."""
    chains: dict[str, list[TurnRecord]] = {}
    for record in records:
        chains.setdefault(record.chain_id, []).append(record)
    for chain_id, turns in chains.items():
        turns.sort(key=lambda r: r.turn)
        if [r.turn for r in turns] != list(range(1, len(turns) + 1)):
            raise ValueError(f"chain {chain_id!r}: turns {[r.turn for r in turns]} are not 1..{len(turns)}")
    return chains


def _type_metrics(task_type: str, records: Sequence[TurnRecord], num_turns: int) -> TypeMetrics:
    per_turn = []
    for t in range(1, num_turns + 1):
        at_t = [r.success for r in records if r.turn == t]
        per_turn.append(100.0 * sum(at_t) / len(at_t) if at_t else None)
    return TypeMetrics(task_type=task_type, num_turns=len(records),
                       success=100.0 * sum(r.success for r in records) / len(records),
                       success_per_turn=tuple(per_turn), cc=edival_cc([_terms(r) for r in records]),
                       mean_score=sum(r.judge_score for r in records) / len(records))


def summarize_mode(mode: str, records: Sequence[TurnRecord]) -> ModeSummary:
    """The numbers of one mode from its records (module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if any(r.mode != mode for r in records):
        raise ValueError(f"records of another mode than {mode!r}")
    chains = chains_of(records)
    if not chains:
        raise ValueError(f"no {mode} records")
    successes = [[r.success for r in turns] for turns in chains.values()]
    marginal = marginal_success(successes)
    cumulative = edival_if(successes) if mode == "multi_turn" else marginal
    turns = []
    for t, (if_value, marginal_value) in enumerate(zip(cumulative, marginal), start=1):
        at_t = [chain[t - 1] for chain in chains.values() if len(chain) >= t]
        cc = edival_cc([_terms(r) for r in at_t])
        turns.append(TurnMetrics(turn=t, num_chains=len(at_t), edival_if=if_value, marginal=marginal_value, cc=cc,
                                 cc_pairs=sum(r.cc_counted and (r.cc_object is not None or r.cc_background is not None)
                                              for r in at_t),
                                 overall=edival_overall(if_value, cc),
                                 mean_score=sum(r.judge_score for r in at_t) / len(at_t)))
    by_type: dict[str, list[TurnRecord]] = {}
    for record in records:
        by_type.setdefault(record.task_type, []).append(record)
    types = tuple(_type_metrics(name, by_type[name], len(turns)) for name in sorted(by_type))
    return ModeSummary(mode=mode, num_chains=len(chains), turns=tuple(turns), types=types,
                       drop=success_drop(marginal), fallbacks=sum(r.judge_fallback for r in records))


def summarize(records: Sequence[TurnRecord], meta: EvalMeta) -> RunSummary:
    """Every mode present in the records, in ``MODES`` order."""
    modes = {mode: summarize_mode(mode, [r for r in records if r.mode == mode])
             for mode in MODES if any(r.mode == mode for r in records)}
    return RunSummary(meta, modes)
