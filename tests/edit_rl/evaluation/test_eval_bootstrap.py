"""The paired bootstrap of a difference between two evaluations, against exact bootstrap
distributions worked by hand and the textbook standard error of a paired mean difference."""
import math

import pytest

from edit_rl.evaluation import TurnRecord
from edit_rl.evaluation.bootstrap import (last_turn_if, last_turn_overall, marginal_drop, paired_bootstrap,
                                          paired_bootstraps, paired_differences)
from edit_rl.evaluation.summary import summarize_mode


def chain(chain_id: str, successes: list[bool], cc: float = 0.9) -> list[TurnRecord]:
    return [TurnRecord("multi_turn", chain_id, t, "color_alter", f"edit {t}", 5.0 if ok else 1.0, False, ok,
                       cc, cc, None, True) for t, ok in enumerate(successes, start=1)]


def evaluation(outcomes: dict[str, list[bool]]) -> list[TurnRecord]:
    return [r for chain_id, successes in outcomes.items() for r in chain(chain_id, successes)]


def turn1(summary) -> float:
    return summary.turns[0].marginal


def test_identical_evaluations_differ_by_exactly_zero():
    records = evaluation({"a": [True, False, False], "b": [True, True, True], "c": [False, False, False]})
    interval = paired_bootstrap(records, records, "multi_turn", last_turn_overall, num_resamples=50)
    assert (interval.estimate, interval.std_error, interval.low, interval.high) == (0.0, 0.0, 0.0, 0.0)
    assert not interval.excludes_zero()


def test_two_chains_match_the_exact_bootstrap_distribution():
    # Turn-1 success differs on chain "a" only (tuned +100 points there, 0 on "b"). Resampling two
    # chains: {a,a} -> +100, {a,b} or {b,a} -> +50, {b,b} -> 0 with probabilities 1/4, 1/2, 1/4:
    # mean 50, standard deviation sqrt(0.25 * 50^2 * 2) = 35.36; a chain drawn twice counts twice.
    base = evaluation({"a": [False], "b": [True]})
    tuned = evaluation({"a": [True], "b": [True]})
    interval = paired_bootstrap(base, tuned, "multi_turn", turn1, num_resamples=4000, seed=3)
    assert interval.estimate == 50.0
    assert interval.std_error == pytest.approx(math.sqrt(1250), rel=0.05)
    assert (interval.low, interval.high) == (0.0, 100.0)
    assert not interval.excludes_zero()  # 0 is a possible resample
    assert interval.text() == f"+50.0 ± {interval.std_error:.1f} (95% interval +0.0 to +100.0)"


def test_standard_error_of_a_paired_mean_difference():
    # 40 chains; per chain d = tuned - base turn-1 success in points: +100 on 12, -100 on 4, 0 on 24.
    # Estimate: mean d = 20; bootstrap standard error of a mean: std(d, ddof=0) / sqrt(n).
    base, tuned = {}, {}
    for i in range(40):
        b, t = (False, True) if i < 12 else (True, False) if i < 16 else (i % 2 == 0, i % 2 == 0)
        base[f"c{i:02d}"], tuned[f"c{i:02d}"] = [b], [t]
    d = [100.0] * 12 + [-100.0] * 4 + [0.0] * 24
    mean = sum(d) / 40
    expected_se = math.sqrt(sum((x - mean) ** 2 for x in d) / 40) / math.sqrt(40)  # 8.94
    interval = paired_bootstrap(evaluation(base), evaluation(tuned), "multi_turn", turn1, num_resamples=3000)
    assert interval.estimate == pytest.approx(20.0)
    assert interval.std_error == pytest.approx(expected_se, rel=0.08)
    assert interval.low == pytest.approx(20.0 - 1.96 * expected_se, abs=3.0)
    assert interval.excludes_zero()


def test_statistics_are_the_report_numbers_and_the_draw_is_seeded():
    base = evaluation({"a": [True, True, False], "b": [True, False, False], "c": [False, False, False]})
    tuned = evaluation({"a": [True, True, True], "b": [True, True, False], "c": [True, False, False]})
    b, t = summarize_mode("multi_turn", base), summarize_mode("multi_turn", tuned)
    overall = paired_bootstrap(base, tuned, "multi_turn", last_turn_overall, num_resamples=20, seed=1)
    drop = paired_bootstrap(base, tuned, "multi_turn", marginal_drop, num_resamples=20, seed=1)
    assert overall.estimate == pytest.approx(t.turns[-1].overall - b.turns[-1].overall)
    assert overall.estimate == pytest.approx(math.sqrt(100 / 3 * 90.0))  # base turn-3 IF 0, tuned 1 of 3
    assert drop.estimate == pytest.approx(t.drop - b.drop)  # (100 - 33.3) - (66.7 - 0)
    assert overall == paired_bootstrap(base, tuned, "multi_turn", last_turn_overall, num_resamples=20, seed=1)
    assert overall != paired_bootstrap(base, tuned, "multi_turn", last_turn_overall, num_resamples=20, seed=2)


def test_unpaired_or_empty_evaluations_are_refused():
    base = evaluation({"a": [True], "b": [False]})
    with pytest.raises(ValueError, match="different chains"):
        paired_bootstrap(base, evaluation({"a": [True], "c": [False]}), "multi_turn", turn1)
    with pytest.raises(ValueError, match="no single_turn records"):
        paired_bootstrap(base, base, "single_turn", turn1)
    with pytest.raises(ValueError, match="num_resamples"):
        paired_bootstrap(base, base, "multi_turn", turn1, num_resamples=1)


def test_several_statistics_share_the_draws_of_one_statistic_each():
    base = evaluation({"a": [True, True, False], "b": [True, False, False], "c": [False, False, False]})
    tuned = evaluation({"a": [True, True, True], "b": [True, True, False], "c": [True, False, False]})
    together = paired_bootstraps(base, tuned, "multi_turn", [last_turn_overall, last_turn_if, marginal_drop],
                                 num_resamples=30, seed=4)
    alone = [paired_bootstrap(base, tuned, "multi_turn", s, num_resamples=30, seed=4)
             for s in (last_turn_overall, last_turn_if, marginal_drop)]
    assert together == alone
    assert together[1].estimate == pytest.approx(100 / 3)  # turn-3 EdiVal-IF: 0 of 3 -> 1 of 3 chains


def test_paired_differences_cover_each_shared_mode_and_say_why_a_pair_is_not_paired():
    base = evaluation({"a": [True, False], "b": [False, False]})
    single = [TurnRecord("single_turn", r.chain_id, r.turn, r.task_type, r.instruction, r.judge_score, False,
                         r.success, r.cc, r.cc_object, None, True) for r in base]
    tuned = evaluation({"a": [True, True], "b": [True, False]})
    other_chains = evaluation({"a": [True, True], "z": [True, False]})
    diffs = paired_differences(base + single, [("tuned", tuned), ("elsewhere", other_chains)], num_resamples=10)
    assert [(d.label, d.mode) for d in diffs] == [("tuned", "multi_turn"), ("elsewhere", "multi_turn")]
    overall, if_last, drop = diffs[0].intervals
    assert if_last.estimate == pytest.approx(50.0)
    assert drop.estimate == pytest.approx(0.0)  # base 50 - 0, tuned 100 - 50
    assert overall.estimate == pytest.approx(math.sqrt(50.0 * 90.0))
    assert diffs[1].intervals == () and "different chains" in diffs[1].reason
