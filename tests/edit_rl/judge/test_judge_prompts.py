"""Prompt templates: Edit-R1's single-turn ones (appendix C) and our multi-turn ones."""

import pytest

from edit_rl.judge.prompts import (
    SCALE_0_5,
    SCALE_1_5,
    SYSTEM_PROMPT,
    YES_NO,
    multi_turn_prompt,
    numbered_instructions,
    single_turn_prompt,
)

INSTRUCTIONS = ["add a red hat to the person", "remove the tree", "make the sky blue"]


def _text(prompt) -> str:
    return "".join(part for part in prompt.user_parts if part is not None)


def test_single_turn_score_template_is_edit_r1s():
    prompt = single_turn_prompt("add a red hat", SCALE_0_5, thinking=False, requirement="keep the face")
    text = _text(prompt)
    assert prompt.system == SYSTEM_PROMPT == "You are a helpful assistant."
    assert prompt.user_parts[:2] == (None, None) and prompt.num_images == 2  # [original, edited, text]
    assert text.startswith("Here are two images: the original and the edited version. Please evaluate the "
                           "edited image based on the following editing instructions and requirements.")
    assert "Instruction: add a red hat\nRequirements: keep the face\n" in text
    assert "rate the editing result from 0 to 5 based on the accuracy and quality of the edit." in text
    assert "\n0: The wrong object was edited" in text and "\n5: The correct object was edited" in text
    assert text.endswith('Response Format:\n"Score": [[rating]] (0-5)')
    assert "Reasoning" not in text and prompt.reasoning_stop is None
    assert prompt.answer_prefixes == ('"Score": [[',) and not prompt.multi_turn


def test_single_turn_1_to_5_scale_changes_range_and_lowest_anchor_only():
    text0 = _text(single_turn_prompt("x", SCALE_0_5, thinking=False))
    text1 = _text(single_turn_prompt("x", SCALE_1_5, thinking=False))
    assert "from 1 to 5" in text1 and "\n1: The wrong object" in text1 and "[[rating]] (1-5)" in text1
    assert text1.replace("1", "0") == text0.replace("1", "0")


def test_single_turn_thinking_asks_for_concise_reasoning_first():
    prompt = single_turn_prompt("add a red hat", SCALE_1_5, thinking=True)
    text = _text(prompt)
    assert "Before that, analyze the image and provide some reasoning process for better evaluation " \
           "(keep your reasoning concise)." in text
    assert text.endswith('Response Format:\n"Reasoning": "...",\n"Score": [[rating]] (1-5)')
    assert prompt.thinking and prompt.reasoning_stop == '"Score"'
    assert "Requirements" not in text  # an empty requirement drops the line


def test_yes_no_template_is_edit_r1s():
    prompt = single_turn_prompt("add a red hat", YES_NO, thinking=False)
    text = _text(prompt)
    assert "Please evaluate if the edited image successfully meets" in text
    assert 'You need to provide a "Yes" or "No" judgment' in text
    assert 'Answer "Yes" if: The correct object was edited' in text and 'Answer "No" if: The wrong object' in text
    assert text.endswith('Response Format:\n"Judgement": [[Yes/No]]')
    assert prompt.answer_prefixes == ('"Judgement": [[',)


def test_unprimed_answer_reads_the_first_response_token():
    assert single_turn_prompt("x", SCALE_0_5, thinking=False, prime_answer=False).answer_prefixes == ("",)
    with pytest.raises(ValueError, match="prime_answer"):
        single_turn_prompt("x", SCALE_0_5, thinking=True, prime_answer=False)


@pytest.mark.parametrize("thinking", [False, True])
@pytest.mark.parametrize("scale", [SCALE_0_5, SCALE_1_5, YES_NO])
def test_multi_turn_template_has_every_image_instruction_and_turn_answer(scale, thinking):
    prompt = multi_turn_prompt(INSTRUCTIONS, scale, thinking=thinking, requirement="keep the background")
    text = _text(prompt)
    assert prompt.num_images == 4 and prompt.num_turns == 3 and prompt.multi_turn
    assert prompt.user_parts[:2] == ("Original image:", None)
    assert prompt.user_parts[2:6] == ("\nResult of turn 1:", None, "\nResult of turn 2:", None)
    assert "Here are 4 images: the original image followed by the results of 3 successive edits" in text
    assert f"Instructions:\n{numbered_instructions(INSTRUCTIONS)}\n" in text
    assert "Turn 1: add a red hat to the person\nTurn 2: remove the tree\nTurn 3: make the sky blue" in text
    assert "Requirements: keep the background" in text
    answer = "[[Yes/No]]" if scale is YES_NO else f"[[rating]] ({scale.labels[0]}-{scale.labels[-1]})"
    answers = f'"Turn 1": {answer},\n"Turn 2": {answer},\n"Turn 3": {answer}'
    assert text.endswith(answers)
    if scale is not YES_NO:
        assert f"from {scale.labels[0]} to 5" in text
    assert prompt.answer_prefixes == ('"Turn 1": [[', ']],\n"Turn 2": [[', ']],\n"Turn 3": [[')
    assert ('"Reasoning": "...",\n"Turn 1"' in text) == thinking
    assert ("analyze the images turn by turn" in text) == thinking
    assert prompt.reasoning_stop == ('"Turn 1"' if thinking else None)


def test_prefix_chain_spells_the_response_format():
    prompt = multi_turn_prompt(INSTRUCTIONS, SCALE_1_5, thinking=False)
    response = "".join(prefix + answer for prefix, answer in zip(prompt.answer_prefixes, "453")) + "]]"
    assert response == '"Turn 1": [[4]],\n"Turn 2": [[5]],\n"Turn 3": [[3]]'
    assert _text(prompt).endswith(response.replace("[[4]]", "[[rating]] (1-5)").replace(
        "[[5]]", "[[rating]] (1-5)").replace("[[3]]", "[[rating]] (1-5)"))


def test_messages_put_images_where_the_slots_are():
    messages = multi_turn_prompt(INSTRUCTIONS[:2], SCALE_1_5, thinking=False).messages()
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    kinds = [item["type"] for item in messages[1]["content"]]
    assert kinds == ["text", "image", "text", "image", "text", "image", "text"]
