"""The instruction-following judge: requests -> prompts -> backend calls -> per-turn scores.

Modes (``JudgeConfig``):

* ``mode="multi_turn"`` (MT-EditFlow training): one query per trajectory with the reference, every
  turn's result and the numbered instructions; one score per turn.
  ``mode="single_turn"`` (MT-EditFlow evaluation, Edit-R1): each turn k is its own query on
  (image k-1, image k, instruction k), image 0 being the reference.
* ``scoring="logit"``: expected answer value from the answer tokens' distribution;
  ``"yes_no"``: the same on {No, Yes}, i.e. P(Yes); ``"sampled"``: answers parsed from generated text.
* ``thinking``: the judge first generates its reasoning (``max_thinking_tokens``, ``temperature``);
  in logit mode the text is cut at the response format's answer key, and prompt + reasoning +
  answer prefix are re-submitted as token ids with the images to read the answer distribution.

Multi-turn logit scoring reads one distribution per turn at the place the response format puts
that turn's answer: turn 1 after '"Turn 1": [['; turn k > 1 after appending turn k-1's most
likely answer token and ']],\\n"Turn k": [['. Turn k is thus conditioned on exactly the response a
greedy judge would have written so far; this takes T scoring passes per query (batched over
queries, and cheap with vLLM's prefix cache since every pass extends the previous one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from PIL import Image

from edit_rl.config.schema import JudgeConfig
from edit_rl.judge.base import GenerationParams, ImageLike, JudgeBackend, TokenPrompt, to_pil
from edit_rl.judge.prompts import SCALES, YES_NO, AnswerScale, JudgePrompt, multi_turn_prompt, single_turn_prompt
from edit_rl.judge.scoring import (
    JudgeResult,
    ScoringStats,
    TurnScore,
    cut_reasoning,
    expected_score,
    most_likely_index,
    parse_answer,
    parse_turn_answers,
)

if TYPE_CHECKING:
    import torch

ANSWER_TOKENS_PER_TURN = 16  # sampled mode: room for '"Turn k": [[n]],\n' per turn after any reasoning


@dataclass(frozen=True)
class JudgeRequest:
    """One trajectory: the reference image, each turn's edited image and instruction (T >= 1)."""

    reference: ImageLike
    edited: tuple[ImageLike, ...]
    instructions: tuple[str, ...]
    requirement: str = ""

    def __post_init__(self) -> None:
        if len(self.edited) != len(self.instructions) or not self.edited:
            raise ValueError(f"a request needs one edited image per instruction (>= 1), got "
                             f"{len(self.edited)} images and {len(self.instructions)} instructions")


@dataclass(frozen=True)
class _Query:
    owner: int  # index of the request it scores
    prompt: JudgePrompt
    images: tuple[Image.Image, ...]


class Judge:
    """Scores batches of :class:`JudgeRequest`; ``stats`` counts requests, turns and fallbacks."""

    def __init__(self, backend: JudgeBackend, config: JudgeConfig) -> None:
        config.validate()
        self.backend = backend
        self.config = config
        self.scale: AnswerScale = YES_NO if config.scoring == "yes_no" else SCALES[config.score_scale]
        self.tokenizer = backend.processor.tokenizer
        self.label_ids = [self._single_token(label) for label in self.scale.labels]
        self.stats = ScoringStats()
        self._generated = 0  # requests generated so far (sampling seeds)

    def _single_token(self, label: str) -> int:
        ids = self.tokenizer.encode(label, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"answer {label!r} is {len(ids)} tokens for this judge's tokenizer; expected 1")
        return ids[0]

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False) if text else []

    def prompt_ids(self, prompt: JudgePrompt) -> list[int]:
        """The prompt rendered with the model's chat template (generation prompt added), as ids."""
        text = self.backend.processor.apply_chat_template(prompt.messages(), tokenize=False,
                                                          add_generation_prompt=True)
        return self._encode(text)

    def queries(self, requests: Sequence[JudgeRequest]) -> list[_Query]:
        """The prompts a batch needs: one per request (multi_turn) or one per turn (single_turn)."""
        config, out = self.config, []
        for owner, request in enumerate(requests):
            images = [to_pil(request.reference)] + [to_pil(image) for image in request.edited]
            if len(images) > config.max_images_per_prompt and config.mode == "multi_turn":
                raise ValueError(f"a {len(request.edited)}-turn request has {len(images)} images; "
                                 f"judge.max_images_per_prompt is {config.max_images_per_prompt}")
            if config.mode == "multi_turn":
                prompt = multi_turn_prompt(request.instructions, self.scale, thinking=config.thinking,
                                           requirement=request.requirement)
                out.append(_Query(owner, prompt, tuple(images)))
                continue
            for k, instruction in enumerate(request.instructions):
                prompt = single_turn_prompt(instruction, self.scale, thinking=config.thinking,
                                            requirement=request.requirement, prime_answer=config.prime_answer)
                out.append(_Query(owner, prompt, (images[k], images[k + 1])))
        return out

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeResult]:
        """One :class:`JudgeResult` per request, with one :class:`TurnScore` per turn."""
        queries = self.queries(requests)
        if self.config.scoring == "sampled":
            per_query = self._sampled(queries)
        else:
            per_query = self._logit(queries)
        turns: list[list[TurnScore]] = [[] for _ in requests]
        texts: list[list[str]] = [[] for _ in requests]
        for query, result in zip(queries, per_query):
            turns[query.owner] += result.turns
            texts[query.owner].append(result.response)
        results = [JudgeResult(tuple(t), "\n\n".join(x for x in text if x)) for t, text in zip(turns, texts)]
        for result in results:
            self.stats.record(result)
        return results

    def _generate_text(self, queries: Sequence[_Query], ids: Sequence[list[int]], max_tokens: int,
                       stop: tuple[str, ...]) -> list[str]:
        # Request i of this call samples with seed config.seed + (requests generated before) + i:
        # reproducible from the judge's start, never the same stream twice.
        params = GenerationParams(max_tokens=max_tokens, temperature=self.config.temperature,
                                  seed=self.config.seed + self._generated, stop=stop)
        self._generated += len(queries)
        prompts = [TokenPrompt(tuple(i), q.images) for q, i in zip(queries, ids)]
        generated = self.backend.generate(prompts, params)
        return [self.tokenizer.decode(g, skip_special_tokens=True) for g in generated]

    def _logit(self, queries: Sequence[_Query]) -> list[JudgeResult]:
        ids = [self.prompt_ids(q.prompt) for q in queries]
        reasoning = [""] * len(queries)
        stops = [q.prompt.reasoning_stop for q in queries]
        thinking = [i for i, stop in enumerate(stops) if stop is not None]
        if thinking:  # one judge's queries share their template, hence their stop string
            texts = self._generate_text([queries[i] for i in thinking], [ids[i] for i in thinking],
                                        self.config.max_thinking_tokens, tuple(sorted({stops[i] for i in thinking})))
            for i, text in zip(thinking, texts):
                reasoning[i] = cut_reasoning(text, stops[i])
                ids[i] += self._encode(reasoning[i] + "\n" if reasoning[i] else "")
        for i, query in enumerate(queries):
            ids[i] += self._encode(query.prompt.answer_prefixes[0])
        scores: list[list[TurnScore]] = [[] for _ in queries]
        for k in range(max(q.prompt.num_turns for q in queries)):
            active = [i for i, q in enumerate(queries) if k < q.prompt.num_turns]
            logprobs = self.backend.next_token_logprobs(
                [TokenPrompt(tuple(ids[i]), queries[i].images) for i in active], self.label_ids)
            for i, lp in zip(active, logprobs):
                score = expected_score(lp, self.scale)
                scores[i].append(score)
                if k + 1 < queries[i].prompt.num_turns:
                    ids[i] += [self.label_ids[most_likely_index(score)]]
                    ids[i] += self._encode(queries[i].prompt.answer_prefixes[k + 1])
        return [JudgeResult(tuple(s), r) for s, r in zip(scores, reasoning)]

    def _sampled(self, queries: Sequence[_Query]) -> list[JudgeResult]:
        """Generate whole responses and parse them. The token budget, reasoning (if thinking) plus
        ANSWER_TOKENS_PER_TURN per turn, depends on the query alone: queries are generated in
        groups of equal turn count, so batching never changes a response."""
        texts: list[str] = [""] * len(queries)
        thinking_budget = self.config.max_thinking_tokens if self.config.thinking else 0
        for num_turns in sorted({q.prompt.num_turns for q in queries}):
            group = [i for i, q in enumerate(queries) if q.prompt.num_turns == num_turns]
            generated = self._generate_text([queries[i] for i in group],
                                            [self.prompt_ids(queries[i].prompt) for i in group],
                                            thinking_budget + ANSWER_TOKENS_PER_TURN * num_turns, ())
            for i, text in zip(group, generated):
                texts[i] = text
        results = []
        for query, text in zip(queries, texts):
            if query.prompt.multi_turn:
                turns = parse_turn_answers(text, self.scale, query.prompt.num_turns)
            else:
                turns = (parse_answer(text, self.scale),)
            results.append(JudgeResult(turns, text))
        return results


def build_judge(config: JudgeConfig, model_path: Optional[str] = None,
                device: Optional[torch.device] = None) -> Judge:
    """Load the judge named by ``config.model`` (a hub id, a local folder, or a "tiny/..." name
    built locally by ``edit_rl.models.resolve_model``) on ``config.backend``, on ``device`` (a
    service replica's ``edit_rl.device.role_device``; None: CUDA where available, else the CPU)."""
    if config.backend == "synthetic":  # the verifiable shapes-world judge, served the same way
        from edit_rl.synthetic.judge import SyntheticJudge

        return SyntheticJudge(config.scoring)  # type: ignore[return-value]
    if model_path is None:
        from edit_rl.models import resolve_model

        model_path = str(resolve_model(config.model))
    backend: JudgeBackend
    if config.backend == "vllm":
        from edit_rl.judge.vllm_backend import VLLMJudgeBackend

        backend = VLLMJudgeBackend(model_path, dtype=config.dtype, max_model_len=config.max_model_len,
                                   max_images=config.max_images_per_prompt, seed=config.seed, device=device,
                                   gpu_memory_utilization=config.gpu_memory_utilization,
                                   max_num_seqs=config.max_num_seqs, max_pixels=config.max_pixels)
    else:
        from edit_rl.judge.transformers_backend import TransformersJudgeBackend

        backend = TransformersJudgeBackend(model_path, dtype=config.dtype, device=device)
    return Judge(backend, config)
