"""The judge factory: a config names the judge, this loads it (docs/algorithms.md §6).

Kept apart from ``edit_rl.judge.judge`` so that the shapes world's judge (``edit_rl.synthetic``),
which builds on the judge's request and score types, is one more backend here and not a circle.
"""
from __future__ import annotations

from typing import Optional

import torch

from edit_rl.config.schema import JudgeConfig
from edit_rl.judge.base import JudgeBackend
from edit_rl.judge.judge import Judge
from edit_rl.synthetic.judge import SyntheticJudge


def build_judge(config: JudgeConfig, model_path: Optional[str] = None,
                device: Optional[torch.device] = None) -> Judge:
    """Load the judge named by ``config.model`` (a hub id, a local folder, or a "tiny/..." name
    built locally by ``edit_rl.models.resolve_model``) on ``config.backend``, on ``device`` (a
    service replica's ``edit_rl.device.role_device``; None: CUDA where available, else the CPU)."""
    if config.backend == "synthetic":  # the verifiable shapes-world judge, served the same way
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
