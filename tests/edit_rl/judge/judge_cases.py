"""Requests and judge settings shared by the in-process transformers run and the vLLM subprocess."""

from __future__ import annotations

import numpy as np

from edit_rl.config.schema import JudgeConfig
from edit_rl.judge import Judge, JudgeRequest, JudgeResult

MODEL = "tiny/qwen3-vl"
MAX_THINKING_TOKENS = 8
# (mode, thinking, scoring): single/multi-turn x thinking/non-thinking score logits, yes/no logits,
# and greedy sampled text (all fall back on a random judge, the same way on both backends).
SETTINGS: list[tuple[str, bool, str]] = [
    ("multi_turn", False, "logit"), ("multi_turn", True, "logit"),
    ("single_turn", False, "logit"), ("single_turn", True, "logit"),
    ("multi_turn", False, "yes_no"), ("single_turn", False, "yes_no"),
    ("multi_turn", False, "sampled"), ("single_turn", True, "sampled"),
]


def requests() -> list[JudgeRequest]:
    """Three trajectories of 3, 2 and 1 turns; noise images of two sizes (4 and 8 image tokens)."""
    rng = np.random.default_rng(0)

    def image(width: int = 64) -> np.ndarray:
        return rng.integers(0, 256, (64, width, 3), dtype=np.uint8)

    return [
        JudgeRequest(image(), (image(), image(), image()), ("add a red hat", "remove the tree", "make the sky blue")),
        JudgeRequest(image(128), (image(128), image(128)), ("turn the cat white", "add a ball"),
                     requirement="keep the background"),
        JudgeRequest(image(), (image(128),), ("replace the dog with a cat",)),
    ]


# vLLM engine settings the judge config passes on (the transformers backend has no engine). The
# largest test image (64 x 128) fits max_pixels, so both backends see the same pixels.
ENGINE = {"gpu_memory_utilization": 0.5, "max_num_seqs": 6, "max_pixels": 64 * 128}


def config(backend: str, mode: str, thinking: bool, scoring: str) -> JudgeConfig:
    return JudgeConfig(model=MODEL, backend=backend, mode=mode, thinking=thinking, scoring=scoring,
                       dtype="float32", max_thinking_tokens=MAX_THINKING_TOKENS, max_model_len=4096, **ENGINE)


def to_json(result: JudgeResult) -> dict:
    return {"values": result.values, "probs": [t.probs for t in result.turns], "mass": [t.mass for t in result.turns],
            "fallback": [t.fallback for t in result.turns], "response": result.response}


def run_settings(backend, backend_name: str) -> dict[str, dict[str, list[dict]]]:
    """Every setting on one loaded backend: the whole batch at once, and one request at a time."""
    out: dict[str, dict[str, list[dict]]] = {}
    for mode, thinking, scoring in SETTINGS:
        judge = Judge(backend, config(backend_name, mode, thinking, scoring))
        batched = [to_json(r) for r in judge.score(requests())]
        single = [to_json(judge.score([r])[0]) for r in requests()]
        out[f"{mode}/{'thinking' if thinking else 'direct'}/{scoring}"] = {"batched": batched, "single": single}
    return out
