"""Scoring: judge and consistency images per second, batched versus one request at a time, and the
judge's vLLM backend versus its transformers backend on the same tiny model.

    python -m benchmarks.scoring [--world cpu|synthetic|both] [--quick]

In one process, no Ray: the library scorers the Serve replicas wrap (``build_judge(...).score``,
``EdivalCC.score_chains``), on torch's 1 thread (what Ray gives a replica), fed the trajectories
of a real rollout of the tiny editor (training chains, uint8 images). "Batched" sends requests
in batches of the service's ``max_batch_size`` (what ``@serve.batch`` forms under load); "single"
one request per call. Variants are interleaved round by round; images = edited turn images.
"""
from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence

from benchmarks.report import Figure, median, save, show, spread


def rollout_trajectories(cfg, num_chains: int) -> list[tuple]:
    """(reference uint8, turn uint8 images, instructions, turn specs) for G rollouts of each chain."""
    import numpy as np
    import torch
    from PIL import Image

    from edit_rl.data import load_training_chains, turn_specs
    from edit_rl.editors.images import pil_to_tensor, uint8_images
    from edit_rl.editors.load import load_editor
    from edit_rl.editors.rollout import rollout_chains

    chains = load_training_chains(cfg.data)[:num_chains]
    editor = load_editor(cfg.editor)
    images = [Image.fromarray(np.asarray(c.load_image(cfg.data.image_dir).convert("RGB"))) for c in chains]
    result = rollout_chains(editor, pil_to_tensor(images, cfg.editor.resolution),
                            [[t.instruction for t in c.turns] for c in chains], cfg.rollout.group_size,
                            cfg.sampler, torch.Generator().manual_seed(cfg.trainer.seed))
    inputs, turns = uint8_images(result.input_images), [uint8_images(t.images) for t in result.turns]
    out = []
    for row in range(len(inputs)):
        chain = chains[row // cfg.rollout.group_size]
        out.append((inputs[row], tuple(t[row] for t in turns), tuple(t.instruction for t in chain.turns),
                    turn_specs(chain.turns, cfg.consistency.pairing)))
    return out


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _timed(fn: Callable[[Sequence], object], items: Sequence, batch: int) -> float:
    start = time.perf_counter()
    for part in _batches(items, batch):
        fn(part)
    return time.perf_counter() - start


def _rates(variants: dict[str, tuple[Callable, Sequence, int]], images: int, rounds: int) -> dict[str, list[float]]:
    """name -> images/s per round, the variants run in turn each round (after one warm-up call each)."""
    for fn, items, batch in variants.values():
        fn(items[:batch])
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (fn, items, batch) in variants.items():
            rates[name].append(images / _timed(fn, items, batch))
    return rates


def measure_world(world: str, num_chains: int, rounds: int) -> list[Figure]:
    from benchmarks.system import load_world_config
    from edit_rl.consistency import Chain
    from edit_rl.consistency.build import build_consistency
    from edit_rl.judge import JudgeRequest
    from edit_rl.judge.build import build_judge

    cfg = load_world_config(world)
    trajectories = rollout_trajectories(cfg, num_chains)
    images = sum(len(t[1]) for t in trajectories)
    requests = [JudgeRequest(ref, turns, ins) for ref, turns, ins, _ in trajectories]
    chains = [Chain((ref, *turns), specs) for ref, turns, _, specs in trajectories]
    judge_batch, cc_batch = cfg.judge.scaling.max_batch_size, cfg.consistency.scaling.max_batch_size
    cc = build_consistency(cfg.consistency)
    score_cc = lambda part: cc.score_chains(list(part), cfg.consistency.pairing)  # noqa: E731
    judges = {"vllm": "vllm", "transformers": "transformers"} if world == "cpu" else {"synthetic": "synthetic"}
    variants: dict[str, tuple[Callable, Sequence, int]] = {}
    for name, backend in judges.items():
        judge = build_judge(dataclasses.replace(cfg.judge, backend=backend))
        variants[f"judge-{name}/batched"] = (judge.score, requests, judge_batch)
        variants[f"judge-{name}/single"] = (judge.score, requests, 1)
    variants["cc/batched"] = (score_cc, chains, cc_batch)
    variants["cc/single"] = (score_cc, chains, 1)
    rates = _rates(variants, images, rounds)
    figures = []
    for scorer in [f"judge-{n}" for n in judges] + ["cc"]:
        batched, single = rates[f"{scorer}/batched"], rates[f"{scorer}/single"]
        batch = cc_batch if scorer == "cc" else judge_batch
        figures.append(Figure(
            f"scoring/{world}/{scorer}/batched-vs-single", f"{scorer} images/s, batches of {batch} / one at a time",
            median(batched) / median(single),
            detail=f"batched {spread(batched)} img/s, single {spread(single)} img/s ({images} turn images)"))
    if world == "cpu":
        for mode in ("batched", "single"):
            v, t = rates[f"judge-vllm/{mode}"], rates[f"judge-transformers/{mode}"]
            figures.append(Figure(f"scoring/cpu/judge-vllm-vs-transformers/{mode}",
                                  f"judge images/s, vLLM / transformers, {mode}", median(v) / median(t)))
    return figures


def main(argv: list[str] | None = None) -> list[Figure]:
    from benchmarks.cli import parse

    args = parse(__doc__.split("\n")[0], argv)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # vLLM on CPU warns on every call otherwise
    import torch

    torch.set_num_threads(1)
    figures = []
    for world in args.worlds:
        figures += show(measure_world(world, num_chains=2 if args.quick else 4, rounds=1 if args.quick else 3))
    if args.json:
        save(figures, args.json)
    return figures


if __name__ == "__main__":
    main()
