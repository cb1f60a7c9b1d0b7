"""The verifiable instruction-following judge of the synthetic world, served like the VLM judge.

``SyntheticJudge.score(requests)`` takes the same :class:`~edit_rl.judge.JudgeRequest` and
returns the same :class:`~edit_rl.judge.JudgeResult` (one :class:`~edit_rl.judge.TurnScore` per
turn, on the 1-5 scale) with the same :class:`~edit_rl.judge.ScoringStats`, so the judge service
holds it in place of :class:`~edit_rl.judge.Judge` unchanged.

It needs nothing beyond the request: each turn's edit is read from its instruction with the
world's grammar (:func:`edit_rl.synthetic.grammar.parse_instruction`), and the images are parsed
from their pixels (:func:`edit_rl.synthetic.parse.parse_image`). Turn k is scored on (image k-1,
image k) with :func:`edit_rl.synthetic.rubric.score_turn`, image 0 being the reference; the
judge modes (multi-turn / single-turn) therefore give the same scores. An instruction outside the
grammar gets the judge's fallback score (1, flagged ``fallback`` and counted in ``stats``), as an
unreadable VLM answer does.

Two scorings, as the VLM judge has (``judge.scoring``): ``sampled`` reads the rubric's score as a
sampled answer would be read (``probs`` one-hot over 1..5, the integer score); ``logit`` gives the
score as an expectation over an answer distribution, the way Edit-R1's logit judge scores
(:func:`graded_turn_score`): certain except for a right edit left dirty (rubric 4), which the
judge calls clean (5) with a probability that falls with the junk-pixel count. Success is score 5
either way (a dirty image scores below 5 in both), so only the fine-grained reward differs.
``response`` holds one line per turn in the multi-turn answer format ('"Turn k": [[s]]') with
the rubric's reason.
"""
from __future__ import annotations

from collections.abc import Sequence

from edit_rl.judge.judge import JudgeRequest
from edit_rl.judge.prompts import SCALE_1_5
from edit_rl.judge.scoring import JudgeResult, ScoringStats, TurnScore, fallback_score, normalize
from edit_rl.synthetic.grammar import parse_instruction
from edit_rl.synthetic.parse import parse_image
from edit_rl.synthetic.rubric import JUNK_TOLERANCE_PIXELS, TurnVerdict, score_turn

SCORINGS = ("sampled", "logit")


def turn_score(verdict: TurnVerdict) -> TurnScore:
    """A rubric verdict as the judge's TurnScore (value on 1-5, normalised (s - 1) / 4)."""
    value = float(verdict.score)
    probs = tuple(1.0 if v == value else 0.0 for v in SCALE_1_5.values)
    return TurnScore(value=value, normalized=normalize(value, SCALE_1_5), probs=probs, mass=1.0)


def clean_probability(junk_pixels: int) -> float:
    """The graded judge's P(answer 5) for a right edit left dirty: p_5 = tau / J, with J > tau junk
    pixels and tau = ``JUNK_TOLERANCE_PIXELS`` (our design for the synthetic world, not a paper's):
    1 at the tolerance, 2/3 at 3 pixels, 1/5 at 10, falling towards 0."""
    if junk_pixels <= JUNK_TOLERANCE_PIXELS:
        raise ValueError(f"{junk_pixels} junk pixels are within the tolerance ({JUNK_TOLERANCE_PIXELS}): a clean image")
    return JUNK_TOLERANCE_PIXELS / junk_pixels


def graded_turn_score(verdict: TurnVerdict) -> TurnScore:
    """The verdict as a logit-mode judge's TurnScore: s = sum_k k p_k (Edit-R1 eq. 10, as
    :func:`edit_rl.judge.scoring.expected_score`) over p = one-hot at the rubric score, except for
    rubric 4 (right edit, junk pixels), where p_5 = :func:`clean_probability` and p_4 = 1 - p_5, so
    s = 4 + tau / J in (4, 5): among dirty images the cleaner scores higher, and none passes."""
    if verdict.score != 4:
        return turn_score(verdict)
    p5 = clean_probability(verdict.junk_pixels)
    probs = (0.0, 0.0, 0.0, 1.0 - p5, p5)
    value = sum(v * p for v, p in zip(SCALE_1_5.values, probs))
    return TurnScore(value=value, normalized=normalize(value, SCALE_1_5), probs=probs, mass=1.0)


class SyntheticJudge:
    """Drop-in for :class:`edit_rl.judge.Judge` on synthetic-world chains (see module docstring)."""

    def __init__(self, scoring: str = "sampled") -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"the synthetic judge scores {SCORINGS}, not {scoring!r}")
        self.scoring = scoring
        self.stats = ScoringStats()

    def verdicts(self, request: JudgeRequest) -> list[TurnVerdict | None]:
        """The rubric verdict of each turn; None where the instruction is outside the grammar."""
        parsed = [parse_image(request.reference)] + [parse_image(image) for image in request.edited]
        out: list[TurnVerdict | None] = []
        for k, instruction in enumerate(request.instructions):
            edit = parse_instruction(instruction)
            out.append(None if edit is None else score_turn(parsed[k], parsed[k + 1], edit))
        return out

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One JudgeResult per request, one 1-5 TurnScore per turn."""
        results = []
        for request in requests:
            turns, lines = [], []
            for k, verdict in enumerate(self.verdicts(request), start=1):
                if verdict is None:
                    turns.append(fallback_score(SCALE_1_5))
                    lines.append(f'"Turn {k}": [[1]] instruction not in the synthetic grammar (fallback)')
                else:
                    turns.append(graded_turn_score(verdict) if self.scoring == "logit" else turn_score(verdict))
                    lines.append(f'"Turn {k}": [[{verdict.score}]] {verdict.reason}')
            result = JudgeResult(tuple(turns), "\n".join(lines))
            self.stats.record(result)
            results.append(result)
        return results
