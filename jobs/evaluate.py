"""Multi-turn evaluation on Ray, EdiVal-compatible: the entrypoint users run or submit.

    python -m jobs.evaluate [--config jobs/configs/<preset>.yaml] [--lora RUN/checkpoints/step_N/lora]
                            [--label NAME] [--compare EVAL_DIR ...] [--output DIR | --output-dir PARENT]
                            [key=value ...]
    ray job submit --address http://127.0.0.1:8265 --working-dir . --runtime-env cluster/runtime_env.yaml \
        -- python -m jobs.evaluate --config ...

Generates the chains of ``evaluation.source`` turn by turn (and each instruction alone on the
input image) with the preset's editor, plus the LoRA checkpoint if given, on rollout workers; scores
every turn with the single-turn judge and EdiVal-CC (input vs output) through the same Serve
services as training; writes an evaluation folder:

    report.md       EdiVal-IF / -CC / -O per turn (MT-EditFlow Table 1 layout), marginal success and
                    the T1 -> T3 drop (Table 7), per edit type; with --compare, the other evaluations
                    first and deltas to the first of them (pass the base model's evaluation), and
                    this run's differences from it with paired-bootstrap intervals over the chains
    scores.parquet  every turn's scores (edit_rl.evaluation.scores): everything can be recomputed
    plots/          per-turn curves and per-type bars (PNG)
    grids/          per-chain grids: input, T1, T2, T3 with instructions and scores
    config.yaml     the resolved config

Without --config it runs the synthetic world with the tiny random editor
(jobs/configs/eval_synthetic.yaml). A turn succeeds when the judge's
score is >= reward.binary_threshold (the presets document their choice).
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from edit_rl.config import Config
    from actors.evaluator import Evaluator

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "eval_synthetic.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="YAML preset (default: synthetic world, tiny editor)")
    parser.add_argument("--lora", default=None, help="a training checkpoint's LoRA folder: RUN/checkpoints/step_N/lora")
    parser.add_argument("--label", default=None, help="the run's name in tables (default: editor, or run/step)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="EVAL_DIR",
                        help="earlier evaluation folders to compare with; the first is the baseline of the deltas")
    parser.add_argument("--output", default=None, help="the evaluation folder (must be empty or absent)")
    parser.add_argument("--output-dir", default=None, help="parent of a new eval-<label>-<time> folder "
                                                           "(default: output_dir of the config)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. evaluation.max_chains=32")
    args = parser.parse_args(argv)
    # --compare takes every word after it: key=value words that name no folder are overrides.
    args.overrides += [c for c in args.compare if "=" in c and not Path(c).exists()]
    args.compare = [c for c in args.compare if "=" not in c or Path(c).exists()]
    return args


def default_label(editor: str, lora: Optional[Path]) -> str:
    """The editor's name, or "<run folder>/<step folder>" of a checkpoint's LoRA."""
    if lora is None:
        return editor
    step = lora.parent if lora.name == "lora" else lora
    return f"{step.parent.parent.name}/{step.name}" if step.parent.name == "checkpoints" else str(lora)


def check_lora_run(cfg, lora: Path) -> None:
    """A checkpoint inside a run folder (RUN/checkpoints/step_N/lora) must come from the same editor."""
    from edit_rl.config import load_config

    run_config = lora.parent.parent.parent / "config.yaml"
    if lora.name != "lora" or not run_config.is_file():
        return
    trained = load_config(run_config).editor
    if (trained.family, trained.name_or_path) != (cfg.editor.family, cfg.editor.name_or_path):
        raise SystemExit(f"--lora {lora} was trained on {trained.family} {trained.name_or_path!r}, but the preset "
                         f"evaluates {cfg.editor.family} {cfg.editor.name_or_path!r}")


def evaluation_dir(output: Optional[str], parent: str, label: str) -> Path:
    """``output`` (empty or absent), else a new ``<parent>/eval-<label>-<YYYYmmdd-HHMMSS>``."""
    if output is not None:
        path = Path(output)
        if path.is_dir() and any(path.iterdir()):
            raise SystemExit(f"--output {path} is not empty")
        path.mkdir(parents=True, exist_ok=True)
        return path
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "run"
    base = Path(parent) / f"eval-{slug}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"cannot create a new evaluation folder {base}")


def resolved_config(config: str, overrides: list[str], lora: Optional[str]) -> tuple[Config, Optional[dict]]:
    """The evaluation's config (``evaluation_config`` of the preset plus overrides; with a LoRA
    checkpoint, its rank, alpha and targets) and the LoRA's tensors (None without one)."""
    import dataclasses

    from edit_rl.config import ConfigError, load_config
    from edit_rl.editors.lora import read_lora_weights
    from actors.evaluator import evaluation_config

    try:
        cfg = evaluation_config(load_config(config, overrides))
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None
    if lora is None:
        return cfg, None
    check_lora_run(cfg, Path(lora))
    weights = read_lora_weights(lora)
    return dataclasses.replace(cfg, lora=weights.config(cfg.lora)).validate(), weights.state


def main(argv: list[str] | None = None, evaluator: Optional[Evaluator] = None) -> Path:
    """``evaluator``: an open `actors.evaluator.Evaluator` that fits this evaluation's config
    (``experiments.shapes.proof`` evaluates the base and its LoRA with one); it stays open. Without it,
    this run starts its own workers and services and closes them."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    from edit_rl.config import save_config
    from edit_rl.evaluation import EvalMeta, load_runs, read_scores, render_report, summarize, write_plots, write_scores
    from edit_rl.evaluation.bootstrap import paired_differences
    from edit_rl.evaluation.compare import distinct_labels

    cfg, lora_state = resolved_config(args.config, args.overrides, args.lora)
    lora_path = Path(args.lora) if args.lora else None
    if evaluator is not None:
        if not evaluator.fits(cfg, with_lora=lora_state is not None):
            raise ValueError("the evaluator passed in was started with another config than this evaluation's")
        evaluator.use_lora(lora_state)
    baselines = load_runs(args.compare) if args.compare else []  # fail before generating anything
    label = args.label or default_label(cfg.editor.name_or_path, lora_path)
    out = evaluation_dir(args.output, args.output_dir or cfg.output_dir, label)
    save_config(cfg, out / "config.yaml")
    print(f"evaluation folder: {out}", flush=True)

    from actors.ray_session import connect

    print(f"ray: {connect(args.address or cfg.cluster.address)}", flush=True)
    start = time.perf_counter()
    own = evaluator is None
    if own:
        from actors.evaluator import Evaluator

        evaluator = Evaluator(cfg, lora_state)
    try:
        records = evaluator.run(out / "grids")
    finally:
        if own:
            evaluator.close()
    sampler = f"{cfg.sampler.eval_method}, {cfg.sampler.eval_num_steps} steps, {cfg.editor.resolution} px"
    meta = EvalMeta(label=label, success_threshold=cfg.reward.binary_threshold, editor=cfg.editor.name_or_path,
                    lora=str(lora_path) if lora_path else None,
                    judge=f"{cfg.judge.model} ({cfg.judge.backend})" if cfg.judge.backend != "synthetic"
                    else "synthetic rubric judge",
                    consistency="synthetic colour segmentation" if cfg.consistency.detector == "synthetic"
                    else f"{cfg.consistency.detector} + {cfg.consistency.features}",
                    source=evaluator.data.description, num_chains=len({r.chain_id for r in records}),
                    skipped_rows=len(evaluator.errors), seed=cfg.evaluation.seed, sampler=sampler,
                    modes=tuple(cfg.evaluation.modes), seconds=time.perf_counter() - start)
    write_scores(records, meta, out / "scores.parquet")
    *baselines, run = distinct_labels([*baselines, summarize(records, meta)], [*args.compare, out])
    differences = []
    if baselines:
        print(f"paired bootstrap of the differences from {args.compare[0]} ...", flush=True)
        differences = paired_differences(read_scores(args.compare[0])[0], [(run.meta.label, records)])
    plots = write_plots([*baselines, run], out / "plots")
    (out / "report.md").write_text(render_report(run, baselines, plots=plots, grids=evaluator.grids,
                                                 errors=evaluator.errors, root=out, differences=differences))
    for mode, summary in run.modes.items():
        per_turn = "  ".join(f"T{t.turn} IF {t.edival_if:.1f} CC {'-' if t.cc is None else f'{t.cc:.1f}'}"
                             for t in summary.turns)
        print(f"{mode}: {per_turn}; marginal drop {summary.drop:.1f}", flush=True)
    print(f"done: {out / 'report.md'}", flush=True)
    return out


if __name__ == "__main__":
    main()
