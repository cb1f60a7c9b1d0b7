"""Pre-train the shapes-world base editor ("shapes/base") by supervised flow matching on single turns.

    python -m experiments.shapes.pretrain_editor --out checkpoints/shapes-base --minutes 25

The model is `edit_rl.editors.shapes_kontext` (FLUX.1-Kontext's adapter in pixel space; untrained
build `edit_rl.models.tiny.shapes_kontext`), trained as docs/shapes-world.md describes:
single turns drawn uniformly from the ground-truth chains of the train split (the editor never sees
its own outputs), rectified flow with logit-normal t, AdamW, gradient clip 1.0. Unlike a
constant 1e-3, the learning rate peaks at 2e-3 after the warm-up and anneals (cosine) over the budget.
``--edit-weight W`` weights the flow-matching error on the pixels an edit changes by 1 + W (most
pixels of a pair are copies); ``--init FOLDER`` continues from a saved model. The shipped
"shapes/base" took three runs, each continuing from the last; ``checkpoints/shapes-base/report.md``
holds their commands and results (``python -m experiments.shapes.placement_errors`` takes its
additions and moves apart). ``--kind-weights KIND=W,...`` draws the turns of
the named kinds W times as often (0 leaves a kind out) and ``--t-mean M`` centres the logit-normal
noise level at M; the shipped runs use neither. Text encoder and transformer are trained
together, through the editor's own ``condition`` / ``velocity``. Training runs for ``--minutes``
(default 25), or ``--steps`` steps, or until the first of the two given runs out; the learning rate
anneals over that budget. Data, order and initialisation come from ``--seed``; a run ended by
``--steps`` alone is replayed exactly by the same command (and ``--threads``).

Then the weights are saved (float16) in ``--out`` and reloaded from there, and the reloaded model is
evaluated on held-out chains with the verifiable judge (`edit_rl.synthetic.editor_eval`): 3-turn
rollouts on its own outputs (marginal and cumulative success per turn) and every turn on its
ground-truth input. ``report.json`` and ``report.md`` go next to the weights.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.pixel_patches import patchify
from edit_rl.editors.shapes_kontext import ShapesKontextEditor
from edit_rl.flow.interpolation import interpolate, velocity_target
from edit_rl.models.tiny.shapes_kontext import HIDDEN, build_tiny_shapes_kontext
from edit_rl.models.tiny.shapes_kontext import SEED as INIT_SEED
from edit_rl.synthetic.edits import EDIT_TYPES
from edit_rl.synthetic.editor_eval import evaluate_editor
from edit_rl.synthetic.splits import make_splits
from edit_rl.synthetic.turn_pairs import TurnPairs, turn_pairs
from edit_rl.synthetic.world import DEFAULT_IMAGE_SIZE, Geometry

REPORT_JSON, REPORT_MD = "report.json", "report.md"
SAVE_DTYPE = torch.float16
DEFAULT_MINUTES = 25.0
FINAL_LR_FRACTION = 0.02


@dataclass(frozen=True)
class TrainStats:
    steps: int
    samples: int
    seconds: float
    final_loss: float  # mean over the last logged window
    stopped_by: str  # which budget ran out: "steps" or "minutes"

    @property
    def samples_per_s(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def editor_config(name_or_path: str, image_size: int = DEFAULT_IMAGE_SIZE) -> EditorConfig:
    return EditorConfig(family="shapes_kontext", name_or_path=name_or_path, dtype="float32",
                        resolution=image_size, gradient_checkpointing=False)


def learning_rate(step: int, progress: float, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, times a cosine from ``peak`` down to ``FINAL_LR_FRACTION`` x
    peak over ``progress`` in [0, 1] (the fraction of the step or time budget used)."""
    cosine = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return peak * min(1.0, (step + 1) / max(warmup, 1)) * cosine


def edit_weights(inputs: Tensor, targets: Tensor, edit_weight: float) -> Tensor:
    """Per-token-channel loss weights (B, N, 48): 1 + ``edit_weight`` on the pixels the edit changes
    (any RGB channel differs between input and target), 1 elsewhere, laid out as the patch tokens."""
    changed = (inputs != targets).any(dim=1, keepdim=True).float().expand(-1, 3, -1, -1)
    return patchify(1.0 + edit_weight * changed)


def edit_weighted_mse(prediction: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """sum(w (v - u)^2) / sum(w): the flow-matching MSE with the edited pixels weighted up (plain MSE
    when every weight is 1). Most of an edit's pixels are copies of the input; without the weight the
    copy dominates the loss long after it is learned."""
    return (weights * (prediction - target) ** 2).sum() / weights.sum()


def budget_progress(step: int, elapsed_s: float, steps: Optional[int], minutes: Optional[float]) -> float:
    """How much of the budget is used: the larger of step / steps and elapsed / minutes (those given)."""
    fractions = [step / steps] if steps is not None else []
    fractions += [elapsed_s / (60 * minutes)] if minutes is not None else []
    return max(fractions)


def parse_kind_weights(text: str) -> dict[str, float]:
    """``"subject_add=4,position_change=4"`` -> {kind: weight}; kinds not named weigh 1."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, value = item.partition("=")
        if not sep or kind not in EDIT_TYPES:
            raise ValueError(f"--kind-weights: {item!r} is not KIND=WEIGHT with KIND one of {EDIT_TYPES}")
        weights[kind] = float(value)
        if not weights[kind] >= 0:
            raise ValueError(f"--kind-weights: weight of {kind} must be >= 0, got {value}")
    return weights


def pair_sampling_weights(task_types: Sequence[str], kind_weights: dict[str, float]) -> Optional[Tensor]:
    """Per-pair sampling weights from per-kind weights (None when every kind weighs 1: uniform draws)."""
    if all(w == 1.0 for w in kind_weights.values()):
        return None
    weights = torch.tensor([kind_weights.get(t, 1.0) for t in task_types], dtype=torch.float64)
    if weights.sum() <= 0:
        raise ValueError("--kind-weights leave no turn to train on")
    return weights


def train(editor: ShapesKontextEditor, pairs: TurnPairs, args: argparse.Namespace) -> TrainStats:
    """Supervised flow matching until args.steps steps or args.minutes minutes (the learning rate anneals
    over whichever runs out first); prints progress lines."""
    modules = (editor.transformer, editor.text_encoder)
    params = [p for m in modules for p in m.parameters()]
    for m in modules:
        m.requires_grad_(True).train()
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.monotonic()
    window: list[float] = []
    last_loss = math.nan
    step = 0
    sampling = pair_sampling_weights(pairs.task_types, parse_kind_weights(args.kind_weights))
    while (progress := budget_progress(step, time.monotonic() - start, args.steps, args.minutes)) < 1.0:
        if sampling is None:
            index = torch.randint(len(pairs), (args.batch_size,), generator=generator)
        else:
            index = torch.multinomial(sampling, args.batch_size, replacement=True, generator=generator)
        inputs, targets, prompts = pairs.batch(index)
        x0 = editor.encode_images(targets)
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.sigmoid(args.t_mean + torch.randn(args.batch_size, generator=generator))  # logit-normal(m, 1)
        cond = editor.condition(prompts, inputs)
        v = editor.velocity(interpolate(x0, noise, t), t, cond)
        loss = edit_weighted_mse(v, velocity_target(x0, noise), edit_weights(inputs, targets, args.edit_weight))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, progress, args.lr, args.warmup)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        window.append(loss.item())
        if step % args.log_every == 0 or step == args.steps:
            elapsed = time.monotonic() - start
            last_loss = sum(window) / len(window)
            print(f"step {step:6d} | {elapsed / 60:5.1f} min | loss {last_loss:.4f} | "
                  f"{step * args.batch_size / elapsed:5.1f} samples/s | lr {optimizer.param_groups[0]['lr']:.2e}",
                  flush=True)
            window = []
    if window:
        last_loss = sum(window) / len(window)
    for m in modules:
        m.requires_grad_(False).eval()
    stopped_by = "steps" if step == args.steps else "minutes"
    return TrainStats(step, step * args.batch_size, time.monotonic() - start, last_loss, stopped_by)


def percent(values: Sequence[float]) -> str:
    return " / ".join(f"{100 * v:.0f}" for v in values)


def reproduce_command(report: dict) -> str:
    """The command that re-runs a report's training: its budget (``--steps`` when the step budget ended
    it, ``--minutes`` when one was given) and its training flags."""
    a, train_stats = report["args"], report["train"]
    budget = f"--steps {train_stats['steps']}" if train_stats["stopped_by"] == "steps" else ""
    if a["minutes"] is not None:
        budget = f"{budget} --minutes {a['minutes']:g}".strip()
    flags = " ".join(f"--{k.replace('_', '-')} {a[k]}" for k in ("seed", "threads", "train_chains", "hidden",
                                                                  "batch_size", "lr", "warmup", "edit_weight"))
    if a.get("kind_weights"):
        flags += f" --kind-weights {a['kind_weights']}"
    if a.get("t_mean"):
        flags += f" --t-mean {a['t_mean']}"
    if a.get("image_size", DEFAULT_IMAGE_SIZE) != DEFAULT_IMAGE_SIZE:
        flags += f" --image-size {a['image_size']}"
    init = f" --init {a['init']}" if a.get("init") else ""
    return f"python -m experiments.shapes.pretrain_editor --out {a['out']}{init} {budget} {flags}"


def report_markdown(report: dict) -> str:
    """report.md from report.json's content."""
    ev, tr, a = report["eval"], report["train"], report["args"]
    turns = " / ".join(f"T{k + 1}" for k in range(len(ev["marginal"])))
    if a["minutes"] is None:
        bound = "the step budget (the command replays it exactly)"
    else:
        bound = (f"the {'step' if tr['stopped_by'] == 'steps' else 'time'} budget (with a time budget, the "
                 "learning-rate schedule and the step count depend on the machine's speed)")
    return "\n".join([
        "# shapes/base: supervised flow-matching base editor",
        "",
        f"Reproduce: `{reproduce_command(report)}`",
        "",
        f"This run: {tr['steps']} steps x {a['batch_size']} = {tr['samples']} single turns in "
        f"{tr['seconds'] / 60:.1f} min ({tr['samples_per_s']:.1f} samples/s on {a['threads']} thread(s)), "
        f"ended by {bound}; final loss {tr['final_loss']:.4f}; {report['num_params'] / 1e6:.2f}M parameters; "
        f"evaluation {report['eval_seconds'] / 60:.1f} min.",
        "",
        f"Held-out: {ev['num_chains']} chains of {len(ev['marginal'])} turns, Euler {ev['num_steps']} steps, "
        "success = verifiable judge score 5.",
        "",
        f"| success (%) | {turns} |",
        "|---|---|",
        f"| marginal, own outputs fed back | {percent(ev['marginal'])} |",
        f"| cumulative, own outputs fed back | {percent(ev['cumulative'])} |",
        f"| ground-truth input each turn | {percent(ev['clean'])} |",
        "",
        f"Single-turn (ground-truth inputs, all turns): {100 * ev['single_turn']:.0f}%; by edit kind: "
        + ", ".join(f"{k} {100 * v:.0f}" for k, v in ev["clean_by_type"].items()) + ".",
        "",
    ])


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("checkpoints/shapes-base"), help="checkpoint folder")
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"training time budget in minutes (default {DEFAULT_MINUTES:g} unless --steps is given)")
    parser.add_argument("--steps", type=int, default=None, help="train exactly this many optimizer steps "
                        "(unless --minutes runs out first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--train-chains", type=int, default=10000)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE,
                        help="image side in px (32-64; 36 aligns each 12 px cell with 3 x 3 patches of 4 px)")
    parser.add_argument("--heldout-chains", type=int, default=200)
    parser.add_argument("--init", type=Path, default=None,
                        help="start from this model folder (a previous run's --out) instead of a random build")
    parser.add_argument("--hidden", type=int, default=HIDDEN, help="transformer and text width (heads of 32)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--edit-weight", type=float, default=0.0,
                        help="extra loss weight on the pixels an edit changes (0: plain MSE)")
    parser.add_argument("--kind-weights", default="",
                        help="sample turns of these edit kinds more (or less) often, e.g. "
                             "'subject_add=4,position_change=4' (others weigh 1; default: uniform over turns)")
    parser.add_argument("--t-mean", type=float, default=0.0,
                        help="mean of the logit-normal noise level (t = 1 is pure noise; > 0 trains noisier levels more)")
    parser.add_argument("--eval-steps", type=int, default=8, help="Euler steps at evaluation")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    if args.minutes is None and args.steps is None:
        args.minutes = DEFAULT_MINUTES
    if (args.minutes is not None and args.minutes <= 0) or (args.steps is not None and args.steps < 1) \
            or args.train_chains < 1 or args.heldout_chains < 1:
        parser.error("--minutes, --steps, --train-chains and --heldout-chains must be positive")
    try:
        parse_kind_weights(args.kind_weights)
    except ValueError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.monotonic()
    train_chains, heldout = make_splits(args.train_chains, args.heldout_chains, Geometry(args.image_size))
    pairs = turn_pairs(train_chains, Geometry(args.image_size))
    print(f"data: {len(train_chains)} train chains ({len(pairs)} turns), {len(heldout)} held-out chains, "
          f"{time.monotonic() - t0:.0f} s", flush=True)

    if args.init is not None:  # continue from a saved model folder (a fresh optimizer and schedule)
        editor = ShapesKontextEditor(editor_config(str(args.init), args.image_size))
    else:
        with tempfile.TemporaryDirectory() as init_folder:
            build_tiny_shapes_kontext(Path(init_folder), seed=INIT_SEED + args.seed, hidden=args.hidden)
            editor = ShapesKontextEditor(editor_config(init_folder, args.image_size))
    num_params = sum(p.numel() for m in (editor.transformer, editor.text_encoder) for p in m.parameters())
    budget = f"{args.steps} steps" if args.minutes is None else f"{args.minutes:g} min"
    if args.minutes is not None and args.steps is not None:
        budget += f" or {args.steps} steps"
    print(f"model: {num_params / 1e6:.2f}M parameters; training for {budget} "
          f"on {args.threads} thread(s)", flush=True)
    stats = train(editor, pairs, args)
    editor.save_pretrained(args.out, dtype=SAVE_DTYPE)
    print(f"saved {args.out} after {stats.steps} steps ({stats.seconds / 60:.1f} min)", flush=True)

    t1 = time.monotonic()
    result = evaluate_editor(ShapesKontextEditor(editor_config(str(args.out), args.image_size)), heldout,
                             num_steps=args.eval_steps, seed=args.seed)
    report = {"train": {**asdict(stats), "samples_per_s": stats.samples_per_s},
              "eval": result.to_dict(), "eval_seconds": time.monotonic() - t1,
              "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "num_params": num_params, "torch": torch.__version__, "machine": platform.machine()}
    (args.out / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n")
    markdown = report_markdown(report)
    (args.out / REPORT_MD).write_text(markdown)
    print(markdown, flush=True)
    return report


if __name__ == "__main__":
    main()
