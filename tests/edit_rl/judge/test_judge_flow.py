"""The judge's orchestration on a scripted backend: which token ids and images each call sees."""

import math

import numpy as np
import pytest

from edit_rl.config.schema import ConfigError, JudgeConfig
from edit_rl.judge import GenerationParams, Judge, JudgeRequest, TokenPrompt
from edit_rl.judge.prompts import multi_turn_prompt, single_turn_prompt, SCALE_1_5


class ScriptedBackend:
    """Returns the given answer distributions round by round and the given generated texts; records calls."""

    def __init__(self, processor, rounds=(), texts=()):
        self._processor = processor
        self.rounds = list(rounds)  # per scoring call: the probabilities over the answer labels
        self.texts = list(texts)
        self.scored: list[list[TokenPrompt]] = []
        self.generated: list[tuple[list[TokenPrompt], GenerationParams]] = []

    @property
    def processor(self):
        return self._processor

    def next_token_logprobs(self, prompts, token_ids):
        self.scored.append(list(prompts))
        probs = self.rounds[len(self.scored) - 1]
        return [[math.log(p) if p else -math.inf for p in probs] for _ in prompts]

    def generate(self, prompts, params):
        self.generated.append((list(prompts), params))
        return [self._processor.tokenizer.encode(t, add_special_tokens=False) for t in self.texts[:len(prompts)]]

    def close(self):
        pass


def _image(value: int) -> np.ndarray:
    return np.full((64, 64, 3), value, dtype=np.uint8)


REQUEST = JudgeRequest(_image(0), (_image(1), _image(2), _image(3)), ("add a hat", "remove the tree", "blue sky"))


def _encode(processor, text):
    return processor.tokenizer.encode(text, add_special_tokens=False)


def _config(**kw) -> JudgeConfig:
    return JudgeConfig(model="tiny/qwen3-vl", dtype="float32", **kw)


def test_multi_turn_logit_reads_each_turn_after_the_previous_greedy_answer(tiny_processor):
    rounds = [(0.1, 0.2, 0.3, 0.4, 0.0), (0.0, 0.0, 0.0, 0.0, 1.0), (0.5, 0.5, 0.0, 0.0, 0.0)]
    backend = ScriptedBackend(tiny_processor, rounds)
    judge = Judge(backend, _config(mode="multi_turn", thinking=False, scoring="logit"))
    [result] = judge.score([REQUEST])
    assert result.values == pytest.approx([3.0, 5.0, 1.5]) and result.response == ""
    assert result.normalized == pytest.approx([0.5, 1.0, 0.125])
    prompt = multi_turn_prompt(REQUEST.instructions, SCALE_1_5, thinking=False)
    base = judge.prompt_ids(prompt)
    first, second, third = (calls[0].token_ids for calls in backend.scored)
    assert list(first) == base + _encode(tiny_processor, '"Turn 1": [[')
    # turn 1's most likely answer is "4", turn 2's "5"
    assert list(second) == list(first) + _encode(tiny_processor, '4]],\n"Turn 2": [[')
    assert list(third) == list(second) + _encode(tiny_processor, '5]],\n"Turn 3": [[')
    assert tiny_processor.tokenizer.decode(third).endswith('"Turn 1": [[4]],\n"Turn 2": [[5]],\n"Turn 3": [[')
    assert [im.getpixel((0, 0))[0] for im in backend.scored[0][0].images] == [0, 1, 2, 3]
    assert base.count(tiny_processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 4
    assert judge.stats.as_dict() == {"requests": 1, "turns": 3, "fallback_requests": 0, "fallback_turns": 0}


def test_thinking_resubmits_prompt_reasoning_and_score_prefix(tiny_processor):
    reasoning = '"Reasoning": "the hat is red",'
    backend = ScriptedBackend(tiny_processor, [(0, 0, 0, 1, 0)], texts=[reasoning + '\n"Score": [[2]] extra'])
    config = _config(mode="single_turn", thinking=True, scoring="logit", max_thinking_tokens=7, temperature=0.5)
    judge = Judge(backend, config)
    request = JudgeRequest(_image(0), (_image(1),), ("add a hat",))
    [result] = judge.score([request])
    assert result.values == [4.0] and result.response == reasoning
    [(gen_prompts, params)] = backend.generated
    assert params == GenerationParams(max_tokens=7, temperature=0.5, seed=0, stop=('"Score"',))
    base = judge.prompt_ids(single_turn_prompt("add a hat", SCALE_1_5, thinking=True))
    assert list(gen_prompts[0].token_ids) == base
    assert list(backend.scored[0][0].token_ids) == (base + _encode(tiny_processor, reasoning + "\n")
                                                    + _encode(tiny_processor, '"Score": [['))


def test_single_turn_mode_scores_each_turn_on_its_own_image_pair(tiny_processor):
    backend = ScriptedBackend(tiny_processor, [(0.2, 0.2, 0.2, 0.2, 0.2)])
    judge = Judge(backend, _config(mode="single_turn", thinking=False, scoring="logit"))
    [result] = judge.score([REQUEST])
    assert len(backend.scored) == 1 and len(backend.scored[0]) == 3  # one batched pass, 3 queries
    pairs = [[im.getpixel((0, 0))[0] for im in p.images] for p in backend.scored[0]]
    assert pairs == [[0, 1], [1, 2], [2, 3]]
    assert result.values == pytest.approx([3.0, 3.0, 3.0])
    texts = [tiny_processor.tokenizer.decode(p.token_ids) for p in backend.scored[0]]
    assert ["Instruction: add a hat" in texts[0], "Instruction: remove the tree" in texts[1]] == [True, True]


def test_unprimed_single_turn_reads_the_first_response_token(tiny_processor):
    backend = ScriptedBackend(tiny_processor, [(1, 0, 0, 0, 0, 0)])
    judge = Judge(backend, _config(mode="single_turn", thinking=False, scoring="logit", score_scale="0-5",
                                   prime_answer=False))
    [result] = judge.score([JudgeRequest(_image(0), (_image(1),), ("add a hat",))])
    assert result.values == [0.0]
    assert tiny_processor.tokenizer.decode(backend.scored[0][0].token_ids).endswith("<|im_start|>assistant\n")


def test_yes_no_scores_p_yes(tiny_processor):
    backend = ScriptedBackend(tiny_processor, [(0.25, 0.75)] * 3)
    judge = Judge(backend, _config(mode="multi_turn", thinking=False, scoring="yes_no"))
    [result] = judge.score([REQUEST])
    assert result.values == pytest.approx([0.75] * 3)
    yes = tiny_processor.tokenizer.convert_tokens_to_ids("Yes")
    assert backend.scored[1][0].token_ids[-len(_encode(tiny_processor, ']],\n"Turn 2": [[')) - 1] == yes


def test_sampled_answers_are_parsed_and_fallbacks_counted(tiny_processor):
    texts = ['"Turn 1": [[4]],\n"Turn 2": [[2]],\n"Turn 3": [[5]]', '"Turn 1": [[3]], then nonsense']
    backend = ScriptedBackend(tiny_processor, texts=texts)
    judge = Judge(backend, _config(mode="multi_turn", thinking=False, scoring="sampled"))
    good, partial = judge.score([REQUEST, REQUEST])
    assert good.values == [4.0, 2.0, 5.0] and not good.fallback
    assert partial.values == [3.0, 1.0, 1.0] and partial.fallback and partial.response == texts[1]
    [(_, params)] = backend.generated
    assert params.max_tokens == 48 and params.stop == () and params.seed == 0
    backend.texts = texts[:1]
    judge.score([REQUEST])
    assert backend.generated[1][1].seed == 2  # sampling seeds never repeat within a judge's life
    assert judge.stats.as_dict() == {"requests": 3, "turns": 9, "fallback_requests": 1, "fallback_turns": 2}


def test_batches_mix_turn_counts(tiny_processor):
    backend = ScriptedBackend(tiny_processor, [(0, 0, 0, 0, 1)] * 3)
    judge = Judge(backend, _config(mode="multi_turn", thinking=False, scoring="logit"))
    short = JudgeRequest(_image(5), (_image(6),), ("add a hat",))
    results = judge.score([REQUEST, short])
    assert [len(r.turns) for r in results] == [3, 1]
    assert [len(calls) for calls in backend.scored] == [2, 1, 1]


def test_config_rejects_what_cannot_work():
    with pytest.raises(ConfigError, match="judge.prime_answer"):
        JudgeConfig(prime_answer=False).validate()  # default mode is multi_turn
    with pytest.raises(ConfigError, match="judge.max_images_per_prompt"):
        JudgeConfig(max_images_per_prompt=1).validate()


def test_too_many_images_for_the_engine_is_a_clear_error(tiny_processor):
    judge = Judge(ScriptedBackend(tiny_processor), _config(max_images_per_prompt=3))
    with pytest.raises(ValueError, match="max_images_per_prompt"):
        judge.score([REQUEST])


def test_requests_need_one_image_per_instruction():
    with pytest.raises(ValueError, match="one edited image per instruction"):
        JudgeRequest(_image(0), (_image(1),), ("a", "b"))
