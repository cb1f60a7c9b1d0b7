"""Logit expectations on hand-made distributions; parsing with counted fallbacks."""

import math

import pytest

from edit_rl.judge.prompts import SCALE_0_5, SCALE_1_5, YES_NO
from edit_rl.judge.scoring import (
    JudgeResult,
    ScoringStats,
    TurnScore,
    answer_distribution,
    cut_reasoning,
    expected_score,
    most_likely_index,
    normalize,
    parse_answer,
    parse_turn_answers,
    yes_probability,
)


def test_edit_r1_expectation_on_0_to_5():
    # p = (0, 0, 0.5, 0, 0.5, 0) -> s = 3, Edit-R1's s / 5 = 0.6.
    lp = [-math.inf, -math.inf, math.log(0.5), -math.inf, math.log(0.5), -math.inf]
    score = expected_score(lp, SCALE_0_5)
    assert score.value == pytest.approx(3.0) and score.normalized == pytest.approx(0.6)
    assert score.probs == pytest.approx((0, 0, 0.5, 0, 0.5, 0)) and score.mass == pytest.approx(1.0)
    assert not score.fallback


def test_expectation_renormalises_over_the_score_tokens():
    # The score tokens hold 0.2 of the mass (the rest on other tokens): p = (0.1, 0.3, 0.6) / 0.2 ...
    raw = [0.02, 0.06, 0.12, 0.0, 0.0, 0.0]
    lp = [math.log(p) if p else -math.inf for p in raw]
    score = expected_score(lp, SCALE_0_5)
    assert score.mass == pytest.approx(0.2)
    assert score.probs == pytest.approx((0.1, 0.3, 0.6, 0, 0, 0))
    assert score.value == pytest.approx(0.3 + 1.2) and score.normalized == pytest.approx(1.5 / 5)
    # ... the same as a softmax over raw logits shifted by any constant (Edit-R1 softmaxes logits).
    shifted = expected_score([x + 7.5 for x in lp], SCALE_0_5)
    assert shifted.value == pytest.approx(score.value) and shifted.probs == pytest.approx(score.probs)


def test_1_to_5_is_min_max_normalised():
    certain = lambda k: [0.0 if i == k else -math.inf for i in range(5)]  # noqa: E731
    assert expected_score(certain(0), SCALE_1_5).normalized == 0.0  # a sure "1"
    assert expected_score(certain(4), SCALE_1_5).normalized == 1.0  # a sure "5"
    uniform = expected_score([math.log(0.2)] * 5, SCALE_1_5)
    assert uniform.value == pytest.approx(3.0) and uniform.normalized == pytest.approx(0.5)
    # p = (0.1, 0.2, 0.3, 0.4, 0) on 1..5 -> s = 0.1 + 0.4 + 0.9 + 1.6 = 3.0; (3 - 1) / 4 = 0.5.
    score = expected_score([math.log(0.1), math.log(0.2), math.log(0.3), math.log(0.4), -math.inf], SCALE_1_5)
    assert score.value == pytest.approx(3.0) and score.normalized == pytest.approx(0.5)
    assert normalize(4.0, SCALE_1_5) == 0.75 and normalize(4.0, SCALE_0_5) == 0.8


def test_yes_no_probability():
    assert yes_probability(math.log(0.3), math.log(0.1)) == pytest.approx(0.75)
    score = expected_score([math.log(0.1), math.log(0.3)], YES_NO)  # labels (No, Yes)
    assert score.value == pytest.approx(0.75) and score.normalized == pytest.approx(0.75)
    assert score.mass == pytest.approx(0.4)


def test_tiny_masses_do_not_underflow():
    probs, mass = answer_distribution([-800.0, -801.0])
    assert probs == pytest.approx([1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1))])
    assert mass == 0.0  # exp(-800) underflows; the renormalised distribution does not


@pytest.mark.parametrize("bad", [[math.nan] * 6, [-math.inf] * 6, [0.0, math.inf, 0.0, 0.0, 0.0, 0.0]])
def test_non_finite_logprobs_fall_back_instead_of_raising(bad):
    score = expected_score(bad, SCALE_0_5)
    assert score.fallback and score.value == 0.0 and score.normalized == 0.0 and score.probs is None


def test_wrong_number_of_logprobs_is_a_programming_error():
    with pytest.raises(ValueError, match="expected 5"):
        expected_score([0.0] * 6, SCALE_1_5)


def test_most_likely_index_breaks_ties_low():
    assert most_likely_index(TurnScore(3.0, 0.5, probs=(0.1, 0.4, 0.1, 0.4, 0.0))) == 1
    assert most_likely_index(TurnScore(0.0, 0.0, fallback=True)) == 0


@pytest.mark.parametrize("text, value", [
    ('"Score": [[4]]', 4.0),
    ('"Reasoning": "the hat is there [[2]] maybe",\n"Score": [[5]]', 5.0),  # the last answer counts
    ("Score: 3", 3.0),
    ("score - 2.", 2.0),
])
def test_parse_single_answer(text, value):
    score = parse_answer(text, SCALE_1_5)
    assert score.value == value and score.normalized == (value - 1) / 4 and not score.fallback


@pytest.mark.parametrize("text", ["", "The edit looks great!", '"Score": [[7]]', "Score: 4.5", '"Score": [[0]]'])
def test_unreadable_single_answer_falls_back_to_the_lowest_value(text):
    score = parse_answer(text, SCALE_1_5)
    assert score.fallback and score.value == 1.0 and score.normalized == 0.0


def test_parse_yes_no_any_case():
    assert parse_answer('"Judgement": [[yes]]', YES_NO).value == 1.0
    assert parse_answer('"Judgement": [[No]]', YES_NO).value == 0.0
    assert parse_answer("Judgment: Yes", YES_NO).value == 1.0
    assert parse_answer("maybe", YES_NO).fallback


def test_parse_turn_answers_and_per_turn_fallbacks():
    text = '"Reasoning": "turn 1 fine",\n"Turn 1": [[4]],\n"Turn 2": [[2]],\n"Turn 3": [[5]]'
    assert [s.value for s in parse_turn_answers(text, SCALE_1_5, 3)] == [4.0, 2.0, 5.0]
    partial = parse_turn_answers('"Turn 1": [[4]], "Turn 3": 9', SCALE_1_5, 3)
    assert [s.value for s in partial] == [4.0, 1.0, 1.0] and [s.fallback for s in partial] == [False, True, True]
    assert [s.value for s in parse_turn_answers("Turn 1: 3\nTurn 2: 5", SCALE_1_5, 2)] == [3.0, 5.0]
    # no turn keys, but exactly one bracketed answer per turn: taken in order
    assert [s.value for s in parse_turn_answers("[[2]] then [[3]]", SCALE_0_5, 2)] == [2.0, 3.0]
    assert all(s.fallback for s in parse_turn_answers("[[2]]", SCALE_0_5, 2))
    # "Turn 1" does not match "Turn 10"
    assert parse_turn_answers('"Turn 10": [[5]], "Turn 1": [[2]]', SCALE_1_5, 1)[0].value == 2.0


def test_stats_count_requests_turns_and_fallbacks():
    stats = ScoringStats()
    ok, bad = TurnScore(4.0, 0.75), TurnScore(1.0, 0.0, fallback=True)
    for result in (JudgeResult((ok, ok, bad)), JudgeResult((ok,)), JudgeResult((bad, bad))):
        stats.record(result)
    assert stats.as_dict() == {"requests": 3, "turns": 6, "fallback_requests": 2, "fallback_turns": 3}


def test_cut_reasoning_at_the_answer_key():
    assert cut_reasoning('"Reasoning": "ok",\n"Score": [[4]]', '"Score"') == '"Reasoning": "ok",'
    assert cut_reasoning("no key here  \n", '"Score"') == "no key here"
