"""The instruction-following judge (Edit-R1 logit scores, MT-EditFlow multi-turn and thinking modes).

``edit_rl.judge.build.build_judge(config.judge).score([JudgeRequest(reference, edited, instructions), ...])`` gives one
``JudgeResult`` per request with one ``TurnScore`` per turn. Backends (vLLM, transformers) load the
model by the same name or folder; importing this package imports neither vLLM nor a model.
"""
from edit_rl.judge.base import GenerationParams, JudgeBackend, TokenPrompt, to_pil
from edit_rl.judge.judge import Judge, JudgeRequest
from edit_rl.judge.prompts import SCALE_0_5, SCALE_1_5, YES_NO, AnswerScale, JudgePrompt
from edit_rl.judge.scoring import JudgeResult, ScoringStats, TurnScore

__all__ = [
    "AnswerScale", "GenerationParams", "Judge", "JudgeBackend", "JudgePrompt", "JudgeRequest", "JudgeResult",
    "SCALE_0_5", "SCALE_1_5", "ScoringStats", "TokenPrompt", "TurnScore", "YES_NO", "to_pil",
]
