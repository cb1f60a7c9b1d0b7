"""The failure-mode diagnosis on four hand-made chains whose rates are worked out by hand."""
import math

import pytest

from experiments.shapes.failure_modes import independence_estimate, kind_turn_table, main
from edit_rl.evaluation.scores import EvalMeta, TurnRecord, write_scores

# chain id -> (kind, judge score) per turn; success = score >= 5
CHAINS = {
    "c1": [("A", 5.0), ("B", 5.0), ("A", 5.0)],
    "c2": [("A", 4.5), ("B", 5.0), ("B", 3.0)],
    "c3": [("B", 5.0), ("A", 4.0), ("A", 5.0)],
    "c4": [("B", 2.0), ("B", 5.0), ("A", 5.0)],
}


def _records() -> list[TurnRecord]:
    rows = []
    for cid, turns in CHAINS.items():
        for t, (kind, score) in enumerate(turns, start=1):
            for mode in ("multi_turn", "single_turn"):
                # single-turn rows all succeed: the diagnosis must ignore them
                s = score if mode == "multi_turn" else 5.0
                rows.append(TurnRecord(mode=mode, chain_id=cid, turn=t, task_type=kind, instruction=f"{kind} {t}",
                                       judge_score=s, judge_fallback=False, success=s >= 5.0, cc=0.9,
                                       cc_object=0.9, cc_background=0.9, cc_counted=True))
    return rows[::-1]  # out of order on purpose


def test_kind_turn_table_counts_success_one_short_and_conditional_success():
    table = {(r.kind, r.turn): r for r in kind_turn_table(_records(), threshold=5.0)}
    assert list(table) == [("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2), ("B", 3)]
    # (count, successes, one short, count after earlier successes, successes there)
    expected = {("A", 1): (2, 1, 1, 2, 1), ("B", 1): (2, 1, 0, 2, 1),
                ("A", 2): (1, 0, 1, 1, 0), ("B", 2): (3, 3, 0, 1, 1),
                ("A", 3): (3, 3, 0, 1, 1), ("B", 3): (1, 0, 0, 0, 0)}
    for key, row in table.items():
        assert (row.count, row.successes, row.one_short, row.count_after_success,
                row.successes_after_success) == expected[key], key
    assert table[("B", 2)].success_rate == 1.0 and table[("A", 1)].one_short_rate == 0.5
    assert math.isnan(table[("B", 3)].conditional_rate)


def test_independence_estimate_multiplies_turn_one_rates_per_kind():
    ind = independence_estimate(_records())
    assert ind.turn_one_rates == {"A": 0.5, "B": 0.5}
    assert ind.num_chains == 4
    assert ind.measured == pytest.approx([0.5, 0.25, 0.25])  # c1 and c3; then c1 alone
    assert ind.estimated == pytest.approx([0.5, 0.25, 0.125])


def test_a_kind_never_seen_at_turn_one_gets_rate_zero():
    rows = [TurnRecord(mode="multi_turn", chain_id="x", turn=t, task_type=k, instruction="", judge_score=5.0,
                       judge_fallback=False, success=True, cc=None, cc_object=None, cc_background=None,
                       cc_counted=False) for t, k in ((1, "A"), (2, "C"))]
    ind = independence_estimate(rows)
    assert ind.measured == [1.0, 1.0] and ind.estimated == [1.0, 0.0]


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="no multi-turn records"):
        kind_turn_table([r for r in _records() if r.mode == "single_turn"], threshold=5.0)
    with pytest.raises(ValueError, match="chain 'c1': turns \\[1, 3\\]"):
        independence_estimate([r for r in _records() if not (r.chain_id == "c1" and r.turn == 2)])


def test_cli_prints_both_tables_for_an_evaluation_folder(tmp_path, capsys):
    meta = EvalMeta(label="tiny", success_threshold=5.0, editor="e", lora=None, judge="j", consistency="c",
                    source="test", num_chains=4, skipped_rows=0, seed=0, sampler="euler", modes=("multi_turn",))
    write_scores(_records(), meta, tmp_path / "scores.parquet")
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| A | 50.0 / 50.0 / 50.0 (2) | 0.0 / 100.0 / 0.0 (1) | 100.0 / 0.0 / 100.0 (1) |" in out
    assert "| B | 50.0 / 0.0 / 50.0 (2) | 100.0 / 0.0 / 100.0 (1) | 0.0 / 0.0 / – (0) |" in out
    assert "| measured | 50.0 | 25.0 | 25.0 |" in out
    assert "| independence estimate (turn-1 rate per kind) | 50.0 | 25.0 | 12.5 |" in out
    assert "All 3 turns succeed in 1 of 4 chains." in out
