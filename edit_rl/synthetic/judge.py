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
unreadable VLM answer does. The score is certain: ``probs`` is one-hot over 1..5 and ``mass`` 1.
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
from edit_rl.synthetic.rubric import TurnVerdict, score_turn


def turn_score(verdict: TurnVerdict) -> TurnScore:
    """A rubric verdict as the judge's TurnScore (value on 1-5, normalised (s - 1) / 4)."""
    value = float(verdict.score)
    probs = tuple(1.0 if v == value else 0.0 for v in SCALE_1_5.values)
    return TurnScore(value=value, normalized=normalize(value, SCALE_1_5), probs=probs, mass=1.0)


class SyntheticJudge:
    """Drop-in for :class:`edit_rl.judge.Judge` on synthetic-world chains (see module docstring)."""

    def __init__(self) -> None:
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
                    turns.append(turn_score(verdict))
                    lines.append(f'"Turn {k}": [[{verdict.score}]] {verdict.reason}')
            result = JudgeResult(tuple(turns), "\n".join(lines))
            self.stats.record(result)
            results.append(result)
        return results
