"""Judge outputs -> scores: logit expectations, parsed answers with counted fallbacks.

Two ways to turn a judge's response into a per-turn score (UniWorld-V2 / Edit-R1 section 2.2 and
appendix B.1):

* logit: the log-probabilities of the scale's answer tokens at the answer position, renormalised
  over those tokens, give the expected answer value (:func:`expected_score`);
* sampled: the answer is parsed from generated text (:func:`parse_answer`,
  :func:`parse_turn_answers`). Parsing never raises: an answer that cannot be read becomes a
  score flagged ``fallback`` with the scale's lowest value, and :class:`ScoringStats` counts them
  for the service to log.

Normalisation to [0, 1] is min-max on the scale: (s - low) / (high - low). On Edit-R1's 0-5 scale
that is exactly its s / 5 (eq. 11). On the 1-5 Likert scale it is (s - 1) / 4, so a certain "1"
gives 0 and a certain "5" gives 1, as MT-EditFlow's "normalised to [0, 1]" (appendix B.2) and
``edit_rl.rewards.normalize_scores`` with ``reward.score_min/score_max = 1/5`` do; dividing by 5
instead would map the scale to [0.2, 1] and shift the group filter's tau_mu. The token "0" is not
an answer on the 1-5 scale, so it is left out before renormalising.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from edit_rl.judge.prompts import AnswerScale


@dataclass(frozen=True)
class TurnScore:
    """One turn's score. ``value`` is on the scale (for yes/no: P(Yes) in logit mode, 0/1 parsed);
    ``normalized`` is in [0, 1]. Logit mode also keeps the renormalised answer distribution
    ``probs`` (in the scale's label order) and ``mass``, the answer tokens' total probability
    before renormalisation (how much the judge followed the format)."""

    value: float
    normalized: float
    probs: Optional[tuple[float, ...]] = None
    mass: Optional[float] = None
    fallback: bool = False


@dataclass(frozen=True)
class JudgeResult:
    """A request's scores, one per turn (one for a single-turn request), and the generated text
    (the reasoning in thinking-logit mode, the whole response in sampled mode, else "")."""

    turns: tuple[TurnScore, ...]
    response: str = ""

    @property
    def fallback(self) -> bool:
        return any(t.fallback for t in self.turns)

    @property
    def values(self) -> list[float]:
        return [t.value for t in self.turns]

    @property
    def normalized(self) -> list[float]:
        return [t.normalized for t in self.turns]


@dataclass
class ScoringStats:
    """Counters for the service's logs: requests and turns scored, and how many fell back."""

    requests: int = 0
    turns: int = 0
    fallback_requests: int = 0
    fallback_turns: int = 0

    def record(self, result: JudgeResult) -> None:
        self.requests += 1
        self.turns += len(result.turns)
        self.fallback_requests += int(result.fallback)
        self.fallback_turns += sum(t.fallback for t in result.turns)

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "turns": self.turns, "fallback_requests": self.fallback_requests,
                "fallback_turns": self.fallback_turns}


def normalize(value: float, scale: AnswerScale) -> float:
    """Min-max normalisation s_bar = (s - low) / (high - low) (Edit-R1 eq. 11; see module doc)."""
    return (value - scale.low) / (scale.high - scale.low)


def fallback_score(scale: AnswerScale) -> TurnScore:
    """The score of an unreadable answer: the scale's lowest value, flagged. Lowest, not middle,
    so that a policy cannot gain reward by producing images that derail the judge's format."""
    return TurnScore(value=scale.low, normalized=0.0, fallback=True)


def answer_distribution(logprobs: Sequence[float]) -> tuple[list[float], float]:
    """p_k = exp(l_k) / sum_j exp(l_j) over the answer tokens, and mass = sum_j exp(l_j).

    ``logprobs`` are full-vocabulary log-probabilities of the answer tokens (or raw logits: the
    renormalised p is the same softmax over the answer tokens Edit-R1 takes of the logits).
    Computed with log-sum-exp, so tiny masses do not underflow.
    """
    top = max(logprobs)
    log_total = top + math.log(sum(math.exp(lp - top) for lp in logprobs))
    return [math.exp(lp - log_total) for lp in logprobs], math.exp(log_total)


def expected_score(logprobs: Sequence[float], scale: AnswerScale) -> TurnScore:
    """Edit-R1 logit score (section 2.2, eqs. 10-11; reward server ``_vllm_evaluate``):
    s = sum_k v_k p_k with p the answer tokens' renormalised distribution, normalised with
    :func:`normalize`. On YES_NO, s = P(Yes) / (P(Yes) + P(No)) (Edit-R1 "Yes/No Logit").

    ``logprobs`` follow ``scale.labels``' order. Non-finite input (NaN, all -inf) gives the
    flagged :func:`fallback_score` instead of an exception.
    """
    if len(logprobs) != len(scale.labels):
        raise ValueError(f"expected {len(scale.labels)} log-probs for scale {scale.name}, got {len(logprobs)}")
    if any(math.isnan(lp) or lp == math.inf for lp in logprobs) or all(lp == -math.inf for lp in logprobs):
        return fallback_score(scale)
    probs, mass = answer_distribution(logprobs)
    value = sum(v * p for v, p in zip(scale.values, probs))
    return TurnScore(value=value, normalized=normalize(value, scale), probs=tuple(probs), mass=mass)


def yes_probability(logprob_yes: float, logprob_no: float) -> float:
    """Edit-R1 "Yes/No Logit" reward: P(Yes) renormalised over {Yes, No} = 1 / (1 + exp(l_no - l_yes))."""
    probs, _ = answer_distribution([logprob_no, logprob_yes])
    return probs[1]


def most_likely_index(score: TurnScore) -> int:
    """Index of the most probable answer (lowest index on ties): the answer token written into the
    response before the next turn's answer prefix in multi-turn logit scoring (greedy decoding)."""
    if score.probs is None:
        return 0
    return max(range(len(score.probs)), key=lambda k: (score.probs[k], -k))


def cut_reasoning(text: str, stop: str) -> str:
    """The reasoning part of a thinking response: ``text`` up to the first ``stop`` (the answer key
    of the response format), trailing whitespace removed."""
    index = text.find(stop)
    return (text if index < 0 else text[:index]).rstrip()


_END = r"(?!\w|\.\d)"  # an answer ends at a non-word character; "4.5" is not the answer "4"


def _label_pattern(scale: AnswerScale) -> str:
    labels = sorted(scale.labels, key=len, reverse=True)
    return "(" + "|".join(re.escape(label) for label in labels) + ")"


def _to_score(label: str, scale: AnswerScale) -> TurnScore:
    lookup = {lab.lower(): v for lab, v in zip(scale.labels, scale.values)}
    value = lookup[label.lower()]
    return TurnScore(value=value, normalized=normalize(value, scale))


def parse_answer(text: str, scale: AnswerScale) -> TurnScore:
    """A single-turn answer from generated text (Edit-R1 "Score Sampling"). Tried in order:
    the last '[[label]]' (the response format); else the last 'Score: label' or
    'Judgement: label' without brackets; else :func:`fallback_score`. Yes/No match any case."""
    label = _label_pattern(scale)
    bracketed = re.findall(r"\[\[\s*" + label + r"\s*\]\]", text, flags=re.IGNORECASE)
    if bracketed:
        return _to_score(bracketed[-1], scale)
    keyed = re.findall(r"(?:Score|Judge?ment)\W{0,4}" + label + _END, text, flags=re.IGNORECASE)
    if keyed:
        return _to_score(keyed[-1], scale)
    return fallback_score(scale)


def parse_turn_answers(text: str, scale: AnswerScale, num_turns: int) -> tuple[TurnScore, ...]:
    """One answer per turn from a multi-turn response. Turn k: the last '"Turn k": [[label]]'
    (brackets or quotes optional); a turn without one falls back. If no turn is keyed at all but
    the text holds exactly ``num_turns`` '[[label]]' answers, they are taken in order."""
    label = _label_pattern(scale)
    scores: list[TurnScore] = []
    for k in range(1, num_turns + 1):
        found = re.findall(r'"?Turn\s*' + str(k) + r'"?\s*:\s*(?:\[\[\s*)?' + label + _END,
                           text, flags=re.IGNORECASE)
        scores.append(_to_score(found[-1], scale) if found else fallback_score(scale))
    if all(s.fallback for s in scores):
        bracketed = re.findall(r"\[\[\s*" + label + r"\s*\]\]", text, flags=re.IGNORECASE)
        if len(bracketed) == num_turns:
            return tuple(_to_score(b, scale) for b in bracketed)
    return tuple(scores)
