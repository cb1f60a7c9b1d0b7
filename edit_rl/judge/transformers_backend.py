"""Judge backend on a transformers forward pass (no vLLM): the reference the vLLM backend is
checked against, and a fallback where vLLM is not installed.

Batches are left-padded; each image placeholder is expanded to grid_t * grid_h * grid_w / merge^2
``<|image_pad|>`` tokens from the image processor's ``image_grid_thw`` (what the HF processor
does to text), and ``mm_token_type_ids`` marks them for Qwen3-VL's M-RoPE.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from edit_rl.judge.base import GenerationParams, TokenPrompt

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TransformersJudgeBackend:
    """``model_path``: a hub id or local folder (the same string vLLM would load)."""

    def __init__(self, model_path: str, dtype: str = "bfloat16", device: str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._processor = AutoProcessor.from_pretrained(model_path)
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=_DTYPES[dtype]).to(self.device)
        self.model.eval()
        tokenizer = self._processor.tokenizer
        self.image_token_id = int(self.model.config.image_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        eos = self.model.generation_config.eos_token_id
        self.eos_token_ids = [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]

    @property
    def processor(self) -> Any:
        return self._processor

    def _inputs(self, prompts: Sequence[TokenPrompt]) -> dict[str, torch.Tensor]:
        images = [image for prompt in prompts for image in prompt.images]
        inputs: dict[str, torch.Tensor] = {}
        tokens_per_image: list[int] = []
        if images:
            vision = self._processor.image_processor(images=images, return_tensors="pt")
            merge = int(self._processor.image_processor.merge_size)
            inputs["pixel_values"] = vision["pixel_values"].to(self.device, self.model.dtype)
            inputs["image_grid_thw"] = vision["image_grid_thw"].to(self.device)
            tokens_per_image = [int(thw.prod()) // merge**2 for thw in vision["image_grid_thw"]]
        rows: list[list[int]] = []
        next_image = 0
        for prompt in prompts:
            row: list[int] = []
            for token in prompt.token_ids:
                if token == self.image_token_id:
                    if next_image >= len(tokens_per_image):
                        raise ValueError("a prompt has more image placeholders than images")
                    row += [token] * tokens_per_image[next_image]
                    next_image += 1
                else:
                    row.append(token)
            rows.append(row)
        if next_image != len(tokens_per_image):
            raise ValueError(f"{len(tokens_per_image)} images but {next_image} image placeholders")
        length = max(len(row) for row in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: the next token follows every row's last column
            ids[i, length - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, length - len(row):] = 1
        inputs.update(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                      mm_token_type_ids=(ids == self.image_token_id).long().to(self.device))
        return inputs

    @torch.no_grad()
    def next_token_logprobs(self, prompts: Sequence[TokenPrompt], token_ids: Sequence[int]) -> list[list[float]]:
        if not prompts:
            return []
        logits = self.model(**self._inputs(prompts), logits_to_keep=1).logits[:, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)[:, list(token_ids)]
        return logprobs.cpu().tolist()

    @torch.no_grad()
    def generate(self, prompts: Sequence[TokenPrompt], params: GenerationParams) -> list[list[int]]:
        """Greedy at temperature 0, else sampling seeded with ``params.seed``. ``params.stop`` is not
        applied here: the judge cuts the decoded text at its stop string either way."""
        if not prompts:
            return []
        inputs = self._inputs(prompts)
        sample = params.temperature > 0
        if sample and params.seed is not None:
            torch.manual_seed(params.seed)
        out = self.model.generate(**inputs, max_new_tokens=params.max_tokens, do_sample=sample,
                                  temperature=params.temperature if sample else None, top_p=None, top_k=None,
                                  eos_token_id=self.eos_token_ids, pad_token_id=self.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:].cpu().tolist()
        result = []
        for row in new:
            ends = [i for i, token in enumerate(row) if token in self.eos_token_ids]
            result.append(row[:ends[0]] if ends else row)
        return result

    def close(self) -> None:
        del self.model
