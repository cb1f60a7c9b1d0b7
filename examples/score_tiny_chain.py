"""One tiny chain through every model-side piece, printed (the editors and the scorers).

    python -m examples.score_tiny_chain [--seed 0]

Rolls out one 3-turn chain with the tiny FLUX.1-Kontext editor, scores every turn with the
multi-turn judge (tiny Qwen3-VL) on both backends (vLLM and transformers, float32), and scores
consistency on consecutive pairs with EdiVal-CC (tiny Grounding DINO + DINOv3). The tiny models
have random weights: the numbers show the plumbing and the backend agreement, not quality.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

INSTRUCTIONS = ("Change the red square to blue.", "Remove the green circle.", "Make the background yellow.")
TURNS = (  # (unchanged objects, all objects, check background) per turn, consecutive pairs
    (("green circle",), ("red square", "green circle"), True),
    (("blue square",), ("blue square", "green circle"), True),
    (("blue square",), ("blue square",), False),
)


def input_image(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), (235, 235, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((6, 6, 26, 26), fill=(220, 30, 30))
    draw.ellipse((36, 30, 58, 52), fill=(30, 180, 60))
    return image


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    from edit_rl.config.schema import ConsistencyConfig, EditorConfig, JudgeConfig, SamplerConfig
    from edit_rl.consistency import Chain, TurnSpec
    from edit_rl.consistency.build import build_consistency
    from edit_rl.editors.images import pil_to_tensor, uint8_images
    from edit_rl.editors.load import load_editor
    from edit_rl.editors.rollout import rollout_chains
    from edit_rl.judge import JudgeRequest
    from edit_rl.judge.build import build_judge

    editor = load_editor(EditorConfig(name_or_path="tiny/flux-kontext", dtype="float32", resolution=64,
                                      gradient_checkpointing=False))
    rollout = rollout_chains(editor, pil_to_tensor([input_image()], 64), [list(INSTRUCTIONS)], 1,
                             SamplerConfig(method="dpm2", num_steps=4), torch.Generator().manual_seed(args.seed))
    reference = uint8_images(rollout.input_images)[0]
    turns = [uint8_images(t.images)[0] for t in rollout.turns]
    print(f"editor: tiny FLUX.1-Kontext, dpm2 4 steps; turn images {[tuple(t.shape) for t in turns]} (H, W, C)")

    request = JudgeRequest(reference, tuple(turns), INSTRUCTIONS)
    scores = {}
    for backend in ("vllm", "transformers"):
        judge = build_judge(JudgeConfig(model="tiny/qwen3-vl", backend=backend, dtype="float32", thinking=False,
                                        max_model_len=4096))
        result = judge.score([request])[0]
        scores[backend] = result
        probs = [np.round(s.probs, 4).tolist() for s in result.turns]
        print(f"judge ({backend:12s}): per-turn scores {[round(v, 4) for v in result.values]}  "
              f"score-token probabilities {probs}")
        judge.backend.close()
    gap = max(abs(a - b) for ta, tb in zip(scores["vllm"].turns, scores["transformers"].turns)
              for a, b in zip(ta.probs, tb.probs))
    print(f"judge backends: max |p_vllm - p_transformers| = {gap:.2e} (float32)")

    cc = build_consistency(ConsistencyConfig(detector="tiny/grounding-dino", features="tiny/dinov3",
                                                image_size=64))
    pairs = cc.score_chains([Chain([reference, *turns], [TurnSpec(*t) for t in TURNS])], "consecutive")[0]
    for k, pair in enumerate(pairs, start=1):
        fmt = lambda x: "skipped" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"CC turn {k} (T{k - 1} vs T{k}): object {fmt(pair.object_score)}  background "
              f"{fmt(pair.background_score)}  CC {fmt(pair.cc)}")
    print(f"total {time.perf_counter() - start:.1f} s")
    return {"judge_gap": gap, "turn_shapes": [t.shape for t in turns], "cc": pairs}


if __name__ == "__main__":
    main()
