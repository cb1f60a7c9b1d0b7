"""Ablations of MT-EditFlow's reward design on the shapes world, several seeds each, mean ± std.

    python -m experiments.shapes.ablations [--variants all | a,b,...] [--seeds 0,1,2] [--out results/ablations]
                                  [--config experiments/shapes/configs/shapes_nft.yaml] [--address ADDR] [key=value ...]

For every (variant, seed) it trains the shipped base editor "shapes/base" with ``jobs.train`` (the
preset plus the variant's overrides plus ``trainer.seed=S``) and evaluates the final LoRA with
``jobs.evaluate`` (multi-turn mode: the table only reads it); the base editor is evaluated once
(same chains, same seed, same sampler: deterministic). The variants (``VARIANTS``) and the groups
they are compared in (``GROUPS``; ``mt-editflow``, the preset as is, is every group's reference):

* IF reward: fine-grained average (``mt-editflow``) vs ``binary-avg`` vs ``binary-and``;
* fusion: advantage level vs ``reward-fusion``;
* advantage: broadcast vs ``per-turn-adv``;
* objective: NFT vs ``grpo`` (Flow-GRPO on the SDE sampler, 1 of 8 steps trained, as NFT);
* the CC weight lambda: ``lambda-0``, 0.15 (``mt-editflow``), ``lambda-0.5``, ``lambda-1``,
  ``lambda-3`` (large lambda: the consistency-hacking regime, CC bought with IF).

``key=value`` overrides apply to every run and to the base evaluation (the variant's own keys and
the seed come after them, so they win). The sweep is resumable: a (variant, seed) whose
``runs/<variant>/seed<S>/eval/`` holds report.md and scores.parquet is skipped, a finished
training run is evaluated without retraining, one cut short resumes from its last checkpoint. A run
recorded in --out's ablations.json is skipped too, so a fresh clone of the committed results adds
variants or seeds to them without redoing the recorded ones (the base is evaluated again first and
must match the recorded base, or the sweep stops). The results are re-aggregated from everything on
disk and recorded after each run (so subsets run one after another add up), into --out:

    ablations.md       the regenerating command, the settings, one table per group (base first),
                       a reading of each group computed from the numbers
    ablations.json     every run's numbers and the per-variant mean / std / n
    reward_curves.png  training IF and CC reward per step, mean over seeds, one row per group
    per_turn_bars.png  EdiVal-O per turn per variant (mean over seeds)
    runs/              base/eval/, <variant>/seed<S>/{<variant>-seed<S>-<time>/, eval/, timing.json}
                       (checkpoints pruned to the final LoRA once evaluated; git-ignored)

A --out with results refuses other --config / overrides (the runs would not compare).

The results committed in ``results/ablations`` (with their time per run) are this sweep:

    python -m experiments.shapes.ablations --variants all --seeds 0,1,2 trainer.num_steps=10
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

from experiments.shapes.ablation_report import (BY_NAME, SWEEP_DEFAULTS, Variant, relative_to_cwd, base_eval_dir, check_same_base,
                                                eval_numbers, evaluated, recorded_results, run_name, slot_dir,
                                                train_dir, write_results)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "shapes_nft.yaml"
DEFAULT_OUT = "results/ablations"


# ---------------------------------------------------------------- the sweep

def _checkpoints(run_dir: Path) -> list[Path]:
    """A run's finished checkpoints, oldest first (a ``.tmp`` one was cut short while saving)."""
    return sorted(p for p in (run_dir / "checkpoints").glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))


def _prune_checkpoints(run_dir: Path) -> None:
    """Keep only the final checkpoint's LoRA (optimizer state and earlier steps go)."""
    steps = _checkpoints(run_dir)
    for step in steps[:-1]:
        shutil.rmtree(step)
    for item in steps[-1].iterdir() if steps else ():
        if item.name != "lora":
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def _finished_training(run_dir: Optional[Path], num_steps: int) -> bool:
    return run_dir is not None and (run_dir / "checkpoints" / f"step_{num_steps:06d}" / "lora").is_dir()


def run_variant(out: Path, variant: Variant, seed: int, config: str, overrides: Sequence[str],
                base_dir: Path, address: Optional[str]) -> dict[str, float]:
    """Train (or resume, or reuse) and evaluate one (variant, seed); returns its timing."""
    from edit_rl.config import load_config
    from jobs import evaluate, train
    from experiments.shapes.proof import last_lora

    slot = slot_dir(out, variant.name, seed)
    run_overrides = [*SWEEP_DEFAULTS, *overrides, *variant.overrides, f"trainer.seed={seed}",
                     f"run_name={run_name(variant.name, seed)}"]
    num_steps = load_config(config, run_overrides).trainer.num_steps
    common = ["--config", config, *(["--address", address] if address else [])]
    start = time.perf_counter()
    run = train_dir(slot, variant.name, seed)
    if not _finished_training(run, num_steps):
        if run is not None and not _checkpoints(run):
            shutil.rmtree(run)  # cut short before its first checkpoint: start again
            run = None
        resume = ["--resume", str(run)] if run is not None else ["--output-dir", str(slot)]
        run = train.main([*common, *resume, *run_overrides])
    train_s = time.perf_counter() - start
    eval_dir = slot / "eval"
    if eval_dir.exists():
        shutil.rmtree(eval_dir)  # a half-written evaluation
    evaluate.main([*common, "--lora", str(last_lora(run)), "--label", f"{variant.name} seed {seed}",
                   "--output", str(eval_dir), "--compare", str(base_dir), *run_overrides])
    _prune_checkpoints(run)
    timing = {"train_s": train_s, "eval_s": time.perf_counter() - start - train_s}
    (slot / "timing.json").write_text(json.dumps(timing))
    return timing


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def check_settings(out: Path, config: str, overrides: Sequence[str]) -> None:
    """An --out keeps one set of settings: its runs must compare."""
    path = out / "sweep.json"
    mine = {"config": relative_to_cwd(config), "overrides": list(overrides)}  # relative: a clone elsewhere compares
    if path.is_file():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            raise SystemExit(f"{out} holds a sweep with other settings ({theirs}); use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(mine, indent=1))


def parse_list(text: str, kind=str) -> list:
    return [kind(x) for x in text.split(",") if x.strip()]


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.shapes.ablations", description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="all", help=f"comma list or 'all': {', '.join(BY_NAME)}")
    parser.add_argument("--seeds", default="0,1,2", help="comma list of trainer.seed values (default 0,1,2)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML preset (default: shapes_nft.yaml)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides for every run, e.g. trainer.num_steps=20")
    args = parser.parse_args(argv)
    names = list(BY_NAME) if args.variants == "all" else parse_list(args.variants)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(BY_NAME)} or 'all'")
    args.variants = [BY_NAME[n] for n in names]
    args.seeds = parse_list(args.seeds, int)
    return args


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = parse_args(argv)
    from edit_rl.config import ConfigError, load_config

    for variant in args.variants:  # fail on a bad override before hours of runs
        try:
            load_config(args.config, [*SWEEP_DEFAULTS, *args.overrides, *variant.overrides])
        except ConfigError as err:
            raise SystemExit(f"config error ({variant.name}): {err}") from None
    out = Path(args.out)
    check_settings(out, args.config, args.overrides)
    from jobs import evaluate

    start = time.perf_counter()
    recorded_base, recorded = recorded_results(out)
    plan = [(v, s) for s in args.seeds for v in args.variants]  # seed-major: a full first seed comes first

    def done(variant: Variant, seed: int) -> bool:
        return evaluated(slot_dir(out, variant.name, seed) / "eval") or (variant.name, seed) in recorded

    base_dir = base_eval_dir(out)
    if not evaluated(base_dir) and (recorded_base is None or not all(done(v, s) for v, s in plan)):
        if base_dir.exists():
            shutil.rmtree(base_dir)
        evaluate.main(["--config", args.config, *(["--address", args.address] if args.address else []),
                       "--output", str(base_dir), "--label", "base", *SWEEP_DEFAULTS, *args.overrides])
        print(f"[base] evaluated in {_minutes(time.perf_counter() - start)}", flush=True)
        check_same_base(recorded_base, eval_numbers(base_dir, "base", None))
    durations: list[float] = []
    for i, (variant, seed) in enumerate(plan, 1):
        tag = f"[{i}/{len(plan)}] {variant.name} seed {seed}"
        if evaluated(slot_dir(out, variant.name, seed) / "eval"):
            print(f"{tag}: already evaluated, skipped", flush=True)
            continue
        if (variant.name, seed) in recorded:
            print(f"{tag}: recorded in {out / 'ablations.json'}, skipped", flush=True)
            continue
        began = time.perf_counter()
        timing = run_variant(out, variant, seed, args.config, args.overrides, base_dir, args.address)
        durations.append(time.perf_counter() - began)
        left = sum(1 for v, s in plan[i:] if not done(v, s))
        write_results(out, args.config, args.overrides)
        print(f"{tag}: done in {_minutes(durations[-1])} (train {_minutes(timing['train_s'])}, eval "
              f"{_minutes(timing['eval_s'])}); elapsed {_minutes(time.perf_counter() - start)}, "
              f"ETA {_minutes(statistics.fmean(durations) * left)} ({left} run(s) left)", flush=True)
    path = write_results(out, args.config, args.overrides)
    print(f"done: {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
