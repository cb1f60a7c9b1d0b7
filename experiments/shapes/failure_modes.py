"""Failure modes of a multi-turn editor, read from evaluation folders (no model runs).

    python -m experiments.shapes.failure_modes EVAL_DIR [EVAL_DIR ...]

Why: RL on the shapes world moves turn-3 Overall by a few points, and turn-3 EdiVal-IF counts only
the chains whose three edits all succeed. This prints, from each folder's ``scores.parquet``
(multi-turn mode; turn 1 edits the clean input):

1. Per edit kind and turn: how often the turn succeeds (score >= the run's threshold), how often it
   falls one rubric point short (threshold - 1 <= score < threshold; on the shapes world's rubric
   that is "the right edit, leaving junk pixels"), and the success rate among the chains whose
   earlier turns all succeeded (exposure bias shows as a conditional rate below turn 1's).
2. The independence estimate: if every turn succeeded as often as turn 1 does for its kind (p_k, on
   clean inputs), EdiVal-IF at turn t would be the mean over chains of prod_{s<=t} p_{kind_s}. The
   measured EdiVal-IF below that estimate is the loss due to editing the model's own outputs; close
   to it, the multi-turn loss is mostly the product of per-turn failures.
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edit_rl.evaluation.scores import TurnRecord, read_scores
from edit_rl.evaluation.summary import chains_of

MODE = "multi_turn"


@dataclass(frozen=True)
class KindTurn:
    """One edit kind at one turn, multi-turn mode."""

    kind: str
    turn: int
    count: int
    successes: int
    one_short: int            # threshold - 1 <= score < threshold
    count_after_success: int  # chains whose turns 1..turn-1 all succeeded
    successes_after_success: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.count

    @property
    def one_short_rate(self) -> float:
        return self.one_short / self.count

    @property
    def conditional_rate(self) -> float:
        return self.successes_after_success / self.count_after_success if self.count_after_success else math.nan


@dataclass(frozen=True)
class Independence:
    """Measured EdiVal-IF per turn against its independence estimate from turn-1 rates per kind."""

    turn_one_rates: dict[str, float]
    measured: list[float]   # EdiVal-IF per turn, fraction of chains
    estimated: list[float]
    num_chains: int


def multi_turn_chains(records: Sequence[TurnRecord]) -> dict[str, list[TurnRecord]]:
    """Multi-turn records grouped by chain, turns in order; ValueError without any."""
    chains = chains_of([r for r in records if r.mode == MODE])
    if not chains:
        raise ValueError("no multi-turn records: evaluate with 'evaluation.modes=[multi_turn]'")
    return chains


def kind_turn_table(records: Sequence[TurnRecord], threshold: float) -> list[KindTurn]:
    """Success, one-point-short and conditional success per (edit kind, turn), sorted by kind, turn."""
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for turns in multi_turn_chains(records).values():
        earlier_ok = True
        for r in turns:
            c = counts[(r.task_type, r.turn)]
            c[0] += 1
            c[1] += r.success
            c[2] += threshold - 1 <= r.judge_score < threshold
            if earlier_ok:
                c[3] += 1
                c[4] += r.success
            earlier_ok = earlier_ok and r.success
    return [KindTurn(kind, turn, *c) for (kind, turn), c in sorted(counts.items())]


def independence_estimate(records: Sequence[TurnRecord]) -> Independence:
    """EdiVal-IF_t measured, and estimated as mean over chains of prod_{s<=t} p_{kind_s}, with p_k the
    turn-1 success rate of kind k (a kind never seen at turn 1 gets rate 0)."""
    chains = multi_turn_chains(records)
    first: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for turns in chains.values():
        first[turns[0].task_type][0] += 1
        first[turns[0].task_type][1] += turns[0].success
    rates = {k: ok / n for k, (n, ok) in sorted(first.items())}
    num_turns = max(len(t) for t in chains.values())
    measured, estimated = [0.0] * num_turns, [0.0] * num_turns
    for turns in chains.values():
        all_ok, product = True, 1.0
        for i, r in enumerate(turns):
            all_ok = all_ok and r.success
            product *= rates.get(r.task_type, 0.0)
            measured[i] += all_ok
            estimated[i] += product
    n = len(chains)
    return Independence(rates, [m / n for m in measured], [e / n for e in estimated], n)


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.1f}"


def report(path: Path) -> str:
    """The markdown diagnosis of one evaluation folder (or scores.parquet)."""
    records, meta = read_scores(path)
    table = kind_turn_table(records, meta.success_threshold)
    ind = independence_estimate(records)
    turns = sorted({row.turn for row in table})
    lines = [f"## {meta.label} ({path})", "",
             f"Multi-turn mode, {ind.num_chains} chains, success = score >= {meta.success_threshold:g}; "
             f"per kind and turn: success % / one point short % / success % after all earlier turns "
             f"succeeded (n).", "",
             "| Edit kind | " + " | ".join(f"T{t}" for t in turns) + " |",
             "|---|" + "---:|" * len(turns)]
    for kind in sorted({row.kind for row in table}):
        cells = {row.turn: row for row in table if row.kind == kind}
        lines.append(f"| {kind} | " + " | ".join(
            f"{_pct(c.success_rate)} / {_pct(c.one_short_rate)} / {_pct(c.conditional_rate)} ({c.count_after_success})"
            if (c := cells.get(t)) else "–" for t in turns) + " |")
    lines += ["", "| EdiVal-IF % | " + " | ".join(f"T{t}" for t in range(1, len(ind.measured) + 1)) + " |",
              "|---|" + "---:|" * len(ind.measured),
              "| measured | " + " | ".join(_pct(x) for x in ind.measured) + " |",
              "| independence estimate (turn-1 rate per kind) | " + " | ".join(_pct(x) for x in ind.estimated) + " |",
              "", f"All {len(ind.measured)} turns succeed in {round(ind.measured[-1] * ind.num_chains)} of "
              f"{ind.num_chains} chains.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evals", nargs="+", type=Path, help="evaluation folders (or their scores.parquet)")
    args = parser.parse_args(argv)
    for path in args.evals:
        print(report(path))


if __name__ == "__main__":
    main()
