"""Every judge prompt template, in one place.

Single-turn templates are Edit-R1's (UniWorld-V2 paper, appendix C: "Score Evaluation",
"CoT Score Evaluation", "Yes/No Evaluation"), verbatim up to layout: the system prompt
"You are a helpful assistant.", [original image, edited image, text], the instruction and
requirements, a rubric that names the lowest and highest answer, and a fixed response format
("Score": [[rating]], "Judgement": [[Yes/No]], preceded by "Reasoning": "..." in the CoT form).
The 1-5 form only changes the range and the lowest anchor's number.

Multi-turn templates are ours, written in the same spirit (MT-EditFlow appendix B.2 names a
multi-turn IF prompt but does not print it): the reference image then every turn's result, each
after a text label, the numbered instructions, the same rubric applied to each turn's edit of the
image it edited, and one answer per turn in a fixed format ("Turn k": [[rating]]).

Thinking ("CoT") forms add Edit-R1's request for concise reasoning before the answer. Where the
response is read: see ``JudgePrompt``; the answer-token distribution is always read right after a
fixed text prefix taken from the response format, so that the score tokens are read where the
format puts them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

ScaleName = Literal["0-5", "1-5", "yes_no"]

SYSTEM_PROMPT = "You are a helpful assistant."  # Edit-R1 appendix C, every template


@dataclass(frozen=True)
class AnswerScale:
    """The answers a judge may give and their numeric values: each label must be ONE token of the
    judge's tokenizer ("0".."5", "Yes"/"No" are single tokens in Qwen's vocabulary)."""

    name: ScaleName
    labels: tuple[str, ...]
    values: tuple[float, ...]

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


SCALE_0_5 = AnswerScale("0-5", tuple("012345"), (0.0, 1.0, 2.0, 3.0, 4.0, 5.0))  # Edit-R1
SCALE_1_5 = AnswerScale("1-5", tuple("12345"), (1.0, 2.0, 3.0, 4.0, 5.0))  # MT-EditFlow Likert
YES_NO = AnswerScale("yes_no", ("No", "Yes"), (0.0, 1.0))  # Edit-R1 Y/N; value = P(Yes)
SCALES: dict[str, AnswerScale] = {s.name: s for s in (SCALE_0_5, SCALE_1_5, YES_NO)}


@dataclass(frozen=True)
class JudgePrompt:
    """One judge query, before tokenisation.

    ``user_parts`` is the user message in order: a string is text, ``None`` is an image slot
    (filled with the request's images in order). The assistant response is then built as:

    * non-thinking: ``answer_prefixes[0]``, answer token of turn 1, ``answer_prefixes[1]``, ...;
    * thinking: the generated reasoning, cut before ``reasoning_stop``, a newline, then the same.

    ``answer_prefixes`` has one entry per scored turn; the first is empty when the first response
    token is read directly (Edit-R1's reward server, ``prime_answer=False``).
    """

    system: str
    user_parts: tuple[Optional[str], ...]
    scale: AnswerScale
    answer_prefixes: tuple[str, ...]
    reasoning_stop: Optional[str]  # None: non-thinking
    multi_turn: bool  # answers keyed '"Turn k"' (multi-turn template) rather than one answer

    @property
    def num_images(self) -> int:
        return sum(part is None for part in self.user_parts)

    @property
    def num_turns(self) -> int:
        return len(self.answer_prefixes)

    @property
    def thinking(self) -> bool:
        return self.reasoning_stop is not None

    def messages(self) -> list[dict]:
        """Chat messages in the processor's format ({"type": "image"} items, images passed aside)."""
        content = [{"type": "image"} if part is None else {"type": "text", "text": part}
                   for part in self.user_parts]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": content}]


# --- Edit-R1 single-turn templates (appendix C), {low}/{high} filled from the scale --------------

_SINGLE_SCORE_HEAD = ("Here are two images: the original and the edited version. Please evaluate the "
                      "edited image based on the following editing instructions and requirements.")
_SINGLE_YES_NO_HEAD = ("Here are two images: the original and the edited version. Please evaluate if the "
                       "edited image successfully meets the following editing instructions and requirements.")
_SINGLE_SCORE_TASK = ("You need to rate the editing result from {low} to {high} based on the accuracy and "
                      "quality of the edit.")
_SCORE_RUBRIC = ("{low}: The wrong object was edited, or the edit completely fails to meet the requirements.\n"
                 "{high}: The correct object was edited, the requirements were met, and the visual result "
                 "is high quality.")
_YES_NO_TASK = 'You need to provide a "Yes" or "No" judgment based on the accuracy and quality of the edit.'
_YES_NO_RUBRIC = ('Answer "Yes" if: The correct object was edited according to the instruction, all '
                  "requirements were met, and the visual result is high quality.\n"
                  'Answer "No" if: The wrong object was edited, the edit fails to meet the requirements, '
                  "or the visual quality is poor.")
_THINK_SINGLE = ("Before that, analyze the image and provide some reasoning process for better evaluation "
                 "(keep your reasoning concise).")
_REASONING_LINE = '"Reasoning": "...",'
_SCORE_KEY = '"Score"'
_JUDGEMENT_KEY = '"Judgement"'

# --- multi-turn templates (ours, same rubric and format) ---------------------------------------

_MULTI_HEAD = ("Here are {num_images} images: the original image followed by the results of {num_turns} "
               "successive edits, where the result of turn k is obtained by editing the image before it "
               "according to the instruction of turn k. Please evaluate {each} based on the following "
               "editing instructions and requirements.")
_MULTI_SCORE_TASK = ("You need to rate the editing result of each turn from {low} to {high} based on the "
                     "accuracy and quality of that turn's edit, judged against the image it edited (the "
                     "original image for turn 1, the previous turn's result otherwise).")
_MULTI_YES_NO_TASK = ('You need to provide a "Yes" or "No" judgment for each turn based on the accuracy and '
                      "quality of that turn's edit, judged against the image it edited (the original image "
                      "for turn 1, the previous turn's result otherwise).")
_THINK_MULTI = ("Before that, analyze the images turn by turn and provide some reasoning process for better "
                "evaluation (keep your reasoning concise).")


def turn_key(turn: int) -> str:
    """The response-format key of turn ``turn`` (1-based): '"Turn 2"'."""
    return f'"Turn {turn}"'


def numbered_instructions(instructions: Sequence[str]) -> str:
    """'Turn 1: ...\\nTurn 2: ...' (1-based), the multi-turn prompt's instruction block."""
    return "\n".join(f"Turn {k}: {text.strip()}" for k, text in enumerate(instructions, start=1))


def _requirement_line(requirement: str) -> str:
    # Edit-R1 fills {{requirement}} per task and passes "" when there is none; an empty
    # "Requirements:" line is dropped here.
    return f"Requirements: {requirement.strip()}\n" if requirement.strip() else ""


def _answer_placeholder(scale: AnswerScale) -> str:
    return "[[Yes/No]]" if scale.name == "yes_no" else f"[[rating]] ({scale.labels[0]}-{scale.labels[-1]})"


def single_turn_prompt(instruction: str, scale: AnswerScale, *, thinking: bool, requirement: str = "",
                       prime_answer: bool = True) -> JudgePrompt:
    """Edit-R1's template (appendix C) for [original image, edited image, instruction].

    ``scale``: SCALE_0_5 (Edit-R1), SCALE_1_5 or YES_NO. ``thinking``: the CoT form (reasoning
    first). ``prime_answer=False`` reads the first response token instead of the token after
    '"Score": [[' (Edit-R1's reward server; only without thinking).
    """
    if not prime_answer and thinking:
        raise ValueError("prime_answer=False reads the first response token; it has no thinking form")
    yes_no = scale.name == "yes_no"
    fill = {"low": scale.labels[0], "high": scale.labels[-1]}
    task = _YES_NO_TASK if yes_no else _SINGLE_SCORE_TASK.format(**fill)
    if thinking:
        task = f"{task} {_THINK_SINGLE}"
    rubric = _YES_NO_RUBRIC if yes_no else _SCORE_RUBRIC.format(**fill)
    key = _JUDGEMENT_KEY if yes_no else _SCORE_KEY
    response = f"{key}: {_answer_placeholder(scale)}"
    if thinking:
        response = f"{_REASONING_LINE}\n{response}"
    text = (f"{_SINGLE_YES_NO_HEAD if yes_no else _SINGLE_SCORE_HEAD}\n"
            f"Instruction: {instruction.strip()}\n{_requirement_line(requirement)}"
            f"{task}\n{rubric}\nResponse Format:\n{response}")
    prefix = f"{key}: [[" if prime_answer else ""
    return JudgePrompt(SYSTEM_PROMPT, (None, None, text), scale, (prefix,), key if thinking else None,
                       multi_turn=False)


def multi_turn_prompt(instructions: Sequence[str], scale: AnswerScale, *, thinking: bool,
                      requirement: str = "") -> JudgePrompt:
    """Our multi-turn template: [label, reference, label, turn-1 result, ..., text]; one answer per
    turn in the format '"Turn k": [[rating]],' (k = 1..T).

    Answer prefixes: '"Turn 1": [[' then ']],\\n"Turn k": [[' after each previous answer token, so
    turn k's distribution is read where the response format puts turn k's answer.
    """
    if len(instructions) < 1:
        raise ValueError("multi_turn_prompt needs at least one instruction")
    num_turns = len(instructions)
    yes_no = scale.name == "yes_no"
    fill = {"low": scale.labels[0], "high": scale.labels[-1]}
    head = _MULTI_HEAD.format(num_images=num_turns + 1, num_turns=num_turns,
                              each="whether each turn's edit succeeded" if yes_no else "each turn's edit")
    task = _MULTI_YES_NO_TASK if yes_no else _MULTI_SCORE_TASK.format(**fill)
    if thinking:
        task = f"{task} {_THINK_MULTI}"
    rubric = _YES_NO_RUBRIC if yes_no else _SCORE_RUBRIC.format(**fill)
    answer = _answer_placeholder(scale)
    response = ",\n".join(f"{turn_key(k)}: {answer}" for k in range(1, num_turns + 1))
    if thinking:
        response = f"{_REASONING_LINE}\n{response}"
    text = (f"{head}\nInstructions:\n{numbered_instructions(instructions)}\n{_requirement_line(requirement)}"
            f"{task}\n{rubric}\nResponse Format:\n{response}")
    parts: list[Optional[str]] = ["Original image:", None]
    for k in range(1, num_turns + 1):
        parts += [f"\nResult of turn {k}:", None]
    parts.append(f"\n{text}")
    prefixes = (f"{turn_key(1)}: [[",) + tuple(f']],\n{turn_key(k)}: [[' for k in range(2, num_turns + 1))
    return JudgePrompt(SYSTEM_PROMPT, tuple(parts), scale, prefixes, turn_key(1) if thinking else None,
                       multi_turn=True)
