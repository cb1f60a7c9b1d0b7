"""The ablation sweep's report: per-variant mean / std over seeds, the reading of each group computed
from the numbers, the markdown table and the plots, re-read from a sweep's folder
(``experiments/shapes/ablations.py`` runs the sweep and calls :func:`write_results` after each run).

The variants (``VARIANTS``) and the groups they are compared in (``GROUPS``; ``mt-editflow``, the
preset as is, is every group's reference) are defined here, so that a report reads a folder without
the runner.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

MODE = "multi_turn"
REFERENCE = "mt-editflow"
FINAL_WINDOW = 5  # "final training reward": mean of the last 5 logged steps (one step is 64 trajectories)
# Applied before the user's overrides: the table reads the multi-turn mode only (half the evaluation time).
SWEEP_DEFAULTS: tuple[str, ...] = ("evaluation.modes=[multi_turn]",)


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    name: str
    title: str
    variants: tuple[str, ...]


VARIANTS: tuple[Variant, ...] = (
    Variant(REFERENCE, "the preset: fine-grained average IF, advantage-level fusion, broadcast advantage, "
                       "lambda 0.15, NFT"),
    Variant("binary-avg", "IF = average of per-turn binary successes", ("reward.if_strategy=binary_avg",)),
    Variant("binary-and", "IF = 1 only if every turn succeeds", ("reward.if_strategy=binary_and",)),
    Variant("reward-fusion", "IF and CC fused at reward level (one advantage of IF + lambda CC)",
            ("reward.fusion=reward",)),
    Variant("per-turn-adv", "one advantage per turn instead of the trajectory's broadcast",
            ("reward.advantage_mode=per_turn",)),
    Variant("grpo", "Flow-GRPO on SDE rollouts (training 1 of 8 steps, as NFT)",
            ("objective.name=grpo", "sampler.method=sde", "objective.grpo.timestep_fraction=0.125")),
    Variant("lambda-0", "CC weight 0 (IF only)", ("reward.cc_weight=0",)),
    Variant("lambda-0.5", "CC weight 0.5", ("reward.cc_weight=0.5",)),
    Variant("lambda-1", "CC weight 1", ("reward.cc_weight=1",)),
    Variant("lambda-3", "CC weight 3", ("reward.cc_weight=3",)),
)
GROUPS: tuple[Group, ...] = (
    Group("if-strategy", "IF reward: fine-grained average vs binary average vs binary AND",
          (REFERENCE, "binary-avg", "binary-and")),
    Group("fusion", "Fusion: advantage level vs reward level", (REFERENCE, "reward-fusion")),
    Group("advantage", "Advantage: trajectory advantage broadcast vs per turn", (REFERENCE, "per-turn-adv")),
    Group("objective", "Objective: DiffusionNFT vs Flow-GRPO", (REFERENCE, "grpo")),
    Group("lambda", "CC weight lambda (consistency hacking at large lambda)",
          ("lambda-0", REFERENCE, "lambda-0.5", "lambda-1", "lambda-3")),
)
BY_NAME = {v.name: v for v in VARIANTS}


# ---------------------------------------------------------------- numbers (pure)

@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (ddof 1; 0 for a single value) of n values."""

    mean: float
    std: float
    n: int

    def fmt(self, digits: int = 1) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def mean_std(values: Sequence[Optional[float]]) -> Optional[Stat]:
    """The Stat of the values that are not None (nor NaN); None when there are none."""
    vals = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals))


def _mean(values: Sequence[Any]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return statistics.fmean(vals) if vals else None


def reward_curves(rows: Sequence[dict]) -> tuple[list[Optional[float]], list[Optional[float]]]:
    """Per logged step of a metrics.jsonl: the training IF reward (judge's raw scale, mean over
    turns) and CC (0-1, mean over turns); None where the step logged none."""
    if_curve, cc_curve = [], []
    for row in sorted(rows, key=lambda r: r["step"]):
        reward = row.get("reward") or {}
        if_curve.append(_mean(reward.get("if_turn") or []))
        cc_curve.append(_mean(reward.get("cc_turn") or []))
    return if_curve, cc_curve


def final_value(curve: Sequence[Optional[float]], window: int = FINAL_WINDOW) -> Optional[float]:
    """Mean of the last ``window`` values of a curve that are not None."""
    vals = [v for v in curve if v is not None]
    return statistics.fmean(vals[-window:]) if vals else None


def mean_curve(curves: Sequence[Sequence[Optional[float]]]) -> list[Optional[float]]:
    """Step-wise mean over seeds (curves of different lengths: the seeds that reached the step)."""
    length = max((len(c) for c in curves), default=0)
    return [_mean([c[i] for c in curves if i < len(c)]) for i in range(length)]


@dataclass
class RunResult:
    """One evaluated run's numbers (percent unless said); the base has no seed and no training."""

    variant: str
    seed: Optional[int]
    overall: list[Optional[float]]
    edival_if: list[float]
    cc: list[Optional[float]]
    marginal: list[float]
    drop: float
    num_chains: int
    train_if: Optional[float] = None  # judge's 1-5 scale, mean over turns, last FINAL_WINDOW steps
    train_cc: Optional[float] = None  # 0-1
    cc_weight: Optional[float] = None
    if_curve: list[Optional[float]] = field(default_factory=list)
    cc_curve: list[Optional[float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantStats:
    variant: str
    seeds: tuple[int, ...]
    overall: tuple[Optional[Stat], ...]  # per turn
    last_if: Optional[Stat]
    last_cc: Optional[Stat]
    last_marginal: Optional[Stat]
    drop: Optional[Stat]
    train_if: Optional[Stat]
    train_cc: Optional[Stat]  # percent
    cc_weight: Optional[float]


def aggregate(runs: Sequence[RunResult]) -> VariantStats:
    """Mean / std over the runs (seeds) of one variant."""
    turns = max(len(r.overall) for r in runs)
    weights = {r.cc_weight for r in runs if r.cc_weight is not None}
    return VariantStats(
        variant=runs[0].variant, seeds=tuple(sorted(r.seed for r in runs if r.seed is not None)),
        overall=tuple(mean_std([r.overall[t] if t < len(r.overall) else None for r in runs]) for t in range(turns)),
        last_if=mean_std([r.edival_if[-1] for r in runs]), last_cc=mean_std([r.cc[-1] for r in runs]),
        last_marginal=mean_std([r.marginal[-1] for r in runs]), drop=mean_std([r.drop for r in runs]),
        train_if=mean_std([r.train_if for r in runs]),
        train_cc=mean_std([None if r.train_cc is None else 100.0 * r.train_cc for r in runs]),
        cc_weight=weights.pop() if len(weights) == 1 else None)


def difference(a: Optional[Stat], b: Optional[Stat]) -> Optional[tuple[float, float, int]]:
    """a - b, the standard error of that difference sqrt(sa^2/na + sb^2/nb), and min(na, nb)."""
    if a is None or b is None:
        return None
    return a.mean - b.mean, math.sqrt(a.std ** 2 / a.n + b.std ** 2 / b.n), min(a.n, b.n)


def _versus(name: str, ref: str, diff: Optional[tuple[float, float, int]], what: str,
            up: str = "above", down: str = "below") -> str:
    if diff is None:
        return f"{name}: no {what} to compare with {ref}"
    d, se, n = diff
    words = f"equal to {ref} in {what}" if d == 0 else \
        f"{down if d < 0 else up} {ref} by {abs(d):.1f} ± {se:.1f} points of {what}"
    if n < 2:
        noise = "one seed: no error estimate"
    elif se == 0:
        noise = "no seed-to-seed spread"
    else:
        noise = "beyond 2 standard errors" if abs(d) > 2 * se else "within 2 standard errors: not distinguishable"
    return f"{name} {words} ({noise})"


def group_reading(group: Group, stats: dict[str, VariantStats]) -> str:
    """One line on a group, from the numbers: each variant against the reference (T-last EdiVal-O
    and the T1 -> T-last drop, ± the standard error of the difference), or for the lambda group
    how training IF / CC and evaluation IF / CC move as lambda grows and where EdiVal-O peaks."""
    present = [stats[v] for v in group.variants if v in stats]
    if not present:
        return "no finished runs yet."
    if group.name == "lambda":
        return _lambda_reading(present)
    ref = stats.get(REFERENCE)
    if ref is None:
        return f"no {REFERENCE} runs yet to compare with."
    parts = []
    for s in present:
        if s.variant == REFERENCE:
            continue
        last = len(s.overall)
        parts.append(_versus(s.variant, REFERENCE, difference(s.overall[-1], ref.overall[-1]), f"T{last} EdiVal-O")
                     + "; " + _versus("its drop", "the reference's", difference(s.drop, ref.drop),
                                      f"T1->T{last} marginal drop", up="larger than", down="smaller than"))
    return ". ".join(parts) + "." if parts else f"only {REFERENCE} has finished runs."


def _trend(stats: Sequence[VariantStats], attr: str, fmt: str) -> str:
    first, last = getattr(stats[0], attr), getattr(stats[-1], attr)
    return "-" if first is None or last is None else f"{fmt.format(first.mean)} -> {fmt.format(last.mean)}"


def _lambda_reading(stats: Sequence[VariantStats]) -> str:
    known = sorted((s for s in stats if s.cc_weight is not None), key=lambda s: s.cc_weight)
    if len(known) < 2:
        return "fewer than two lambdas finished."
    lo, hi = known[0], known[-1]
    line = (f"lambda {lo.cc_weight:g} -> {hi.cc_weight:g}: training IF {_trend(known, 'train_if', '{:.2f}')}, "
            f"training CC {_trend(known, 'train_cc', '{:.1f}')}, eval T{len(hi.overall)} EdiVal-IF "
            f"{_trend(known, 'last_if', '{:.1f}')}, EdiVal-CC {_trend(known, 'last_cc', '{:.1f}')}")
    scored = [s for s in known if s.overall and s.overall[-1] is not None]
    if scored:
        best = max(scored, key=lambda s: s.overall[-1].mean)
        line += f"; best T{len(best.overall)} EdiVal-O at lambda {best.cc_weight:g} ({best.overall[-1].fmt()})"
    if all(x is not None for x in (lo.train_if, hi.train_if, lo.train_cc, hi.train_cc)):
        line += ". Consistency hacking (CC up, IF down as lambda grows): " + _hacking_verdict(lo, hi)
    return line + "."


def _hacking_verdict(lo: VariantStats, hi: VariantStats) -> str:
    """Whether training CC rose and training IF fell from the smallest to the largest lambda, and
    whether both moves are beyond 2 standard errors of the difference."""
    d_cc, d_if = difference(hi.train_cc, lo.train_cc), difference(hi.train_if, lo.train_if)
    assert d_cc is not None and d_if is not None
    if not (d_cc[0] > 0 and d_if[0] < 0):
        return "not seen in the training rewards"
    if min(d_cc[2], d_if[2]) < 2:
        return "CC up and IF down in the training rewards (one seed: no error estimate)"
    if all(abs(d) > 2 * se for d, se, _ in (d_cc, d_if)):
        return "seen in the training rewards (both beyond 2 standard errors)"
    return (f"CC up {d_cc[0]:.1f} ± {d_cc[1]:.1f} and IF down {-d_if[0]:.2f} ± {d_if[1]:.2f} in the training "
            "rewards, not both beyond 2 standard errors: not distinguishable")


# ---------------------------------------------------------------- markdown (pure)

def _cell(stat: Optional[Stat], digits: int = 1) -> str:
    return "-" if stat is None else stat.fmt(digits)


def _base_cell(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def group_table(group: Group, stats: dict[str, VariantStats], base: Optional[RunResult]) -> str:
    turns = max([len(s.overall) for s in stats.values()] + [len(base.overall) if base else 0] + [1])
    head = (["variant", "seeds", *(f"EdiVal-O T{t + 1}" for t in range(turns)), f"EdiVal-IF T{turns}",
             f"EdiVal-CC T{turns}", f"marginal T{turns}", f"drop T1->T{turns}", "train IF (1-5)", "train CC"])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    if base is not None:
        lines.append("| " + " | ".join(["base", "-", *(_base_cell(o) for o in base.overall),
                                        _base_cell(base.edival_if[-1]), _base_cell(base.cc[-1]),
                                        _base_cell(base.marginal[-1]), _base_cell(base.drop), "-", "-"]) + " |")
    for name in group.variants:
        s = stats.get(name)
        if s is None:
            continue
        lines.append("| " + " | ".join([name, f"{len(s.seeds)} ({','.join(map(str, s.seeds))})",
                                        *(_cell(o) for o in s.overall), _cell(s.last_if), _cell(s.last_cc),
                                        _cell(s.last_marginal), _cell(s.drop), _cell(s.train_if, 2),
                                        _cell(s.train_cc)]) + " |")
    return "\n".join(lines)


def render_markdown(stats: dict[str, VariantStats], base: Optional[RunResult], command: str,
                    settings: Sequence[str]) -> str:
    out = ["# Ablations: MT-EditFlow reward design on the shapes world", "",
           "Regenerate (resumable: runs finished under `runs/` or recorded in ablations.json are skipped):", "",
           f"    {command}", "", "## Settings", "", *(f"- {s}" for s in settings), "",
           "Cells are mean ± std over seeds (sample std; 0 with one seed), in percent except train IF (judge "
           f"score 1-5). EdiVal-O/-IF/-CC and marginal success: held-out chains, multi-turn mode (each turn "
           f"edits the previous output). Train IF / CC: the training rollouts' reward, mean over turns and the "
           f"last {FINAL_WINDOW} steps. Readings compare means; ± there is the standard error of the "
           "difference, sqrt(s1²/n1 + s2²/n2). The base row is ONE evaluation (one noise seed, no ± over "
           "seeds): at turn 3 a few held-out chains decide it (the shapes base scored turn-3 EdiVal-O 11.9, 15.4 "
           "and 18.2 under evaluation seeds 1234, 1 and 2), so compare the variants with each other, not with "
           "it.", "",
           "## Variants", "", *(f"- `{v.name}`: {v.description}"
                                + (f" (`{' '.join(v.overrides)}`)" if v.overrides else "") for v in VARIANTS), ""]
    for group in GROUPS:
        out += [f"## {group.title}", "", group_table(group, stats, base), "",
                f"Reading: {group_reading(group, stats)}", ""]
    out += ["## Plots", "", "![training rewards](reward_curves.png)", "", "![EdiVal-O per turn](per_turn_bars.png)", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- files

def slot_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / variant / f"seed{seed}"


def base_eval_dir(out: Path) -> Path:
    return out / "runs" / "base" / "eval"


def evaluated(eval_dir: Path) -> bool:
    return (eval_dir / "report.md").is_file() and (eval_dir / "scores.parquet").is_file()


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def train_dir(slot: Path, variant: str, seed: int) -> Optional[Path]:
    from edit_rl.observability.run_dir import latest_run_dir

    return latest_run_dir(slot, run_name(variant, seed))


def eval_numbers(eval_dir: Path, variant: str, seed: Optional[int]) -> RunResult:
    from edit_rl.evaluation.compare import load_run

    summary = load_run(eval_dir).modes.get(MODE)
    if summary is None:
        raise SystemExit(f"{eval_dir} has no {MODE} evaluation (evaluation.modes must include it)")
    turns = summary.turns
    return RunResult(variant=variant, seed=seed, overall=[t.overall for t in turns],
                     edival_if=[t.edival_if for t in turns], cc=[t.cc for t in turns],
                     marginal=[t.marginal for t in turns], drop=summary.drop, num_chains=summary.num_chains)


def recorded_results(out: Path) -> tuple[Optional[RunResult], dict[tuple[str, int], RunResult]]:
    """The base and the (variant, seed) runs recorded in out/ablations.json: the committed results,
    whose run folders (git-ignored) a fresh clone does not have."""
    path = out / "ablations.json"
    if not path.is_file():
        return None, {}
    try:
        data = json.loads(path.read_text())
        base = RunResult(**data["base"]) if data.get("base") else None
        runs = {(r["variant"], r["seed"]): RunResult(**r) for r in data.get("runs", [])}
    except (ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"{path} is not a sweep's results file ({err}); move it away or use another --out") from None
    return base, {key: run for key, run in runs.items() if key[0] in BY_NAME}


def check_same_base(recorded: Optional[RunResult], fresh: Optional[RunResult], tol: float = 1e-6) -> None:
    """The base evaluation is deterministic: one made here must match the recorded one, or the
    recorded runs and the new ones would not compare."""
    if recorded is None or fresh is None:
        return
    for name in ("overall", "edival_if", "cc", "marginal"):
        a, b = getattr(recorded, name), getattr(fresh, name)
        same = len(a) == len(b) and all((x is None and y is None) or (x is not None and y is not None
                                        and abs(x - y) <= tol) for x, y in zip(a, b))
        if not same:
            raise SystemExit(f"the base evaluates differently here ({name} {b}) than in the recorded results "
                             f"({a}): the recorded runs would not compare with new ones; use another --out")


def load_results(out: Path) -> tuple[Optional[RunResult], list[RunResult]]:
    """The base evaluation and every evaluated (variant, seed) under out/runs/, plus the runs
    recorded in ablations.json that have no folder there (a fresh clone of the committed results)."""
    from edit_rl.config import load_config
    from edit_rl.observability import read_metrics

    recorded_base, recorded = recorded_results(out)
    base = eval_numbers(base_eval_dir(out), "base", None) if evaluated(base_eval_dir(out)) else recorded_base
    runs = []
    for variant in VARIANTS:
        for slot in sorted((out / "runs" / variant.name).glob("seed*")):
            if not slot.name[4:].isdigit() or not evaluated(slot / "eval"):
                continue
            seed = int(slot.name[4:])
            result = eval_numbers(slot / "eval", variant.name, seed)
            run = train_dir(slot, variant.name, seed)
            if run is not None and (run / "metrics.jsonl").is_file():
                result.if_curve, result.cc_curve = reward_curves(read_metrics(run))
                result.train_if, result.train_cc = final_value(result.if_curve), final_value(result.cc_curve)
                result.cc_weight = load_config(run / "config.yaml").reward.cc_weight
            if (slot / "timing.json").is_file():
                result.seconds = json.loads((slot / "timing.json").read_text())
            runs.append(result)
    on_disk = {(r.variant, r.seed) for r in runs}
    runs += [recorded[(v.name, seed)] for v in VARIANTS for (name, seed) in sorted(recorded)
             if name == v.name and (name, seed) not in on_disk]
    return base, runs


def _percent_if(value: Optional[float], lo: float = 1.0, hi: float = 5.0) -> Optional[float]:
    return None if value is None else 100.0 * (value - lo) / (hi - lo)


def write_plots(stats_runs: dict[str, list[RunResult]], base: Optional[RunResult], out: Path) -> list[Path]:
    """reward_curves.png (one row per group: IF and CC panels) and per_turn_bars.png."""
    import tempfile

    from PIL import Image

    from edit_rl.evaluation.plots import Panel, Series, grouped_bars, line_panels

    written = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for group in GROUPS:
            names = [v for v in group.variants if stats_runs.get(v) and any(r.if_curve for r in stats_runs[v])]
            if not names:
                continue
            if_curves = {v: mean_curve([r.if_curve for r in stats_runs[v]]) for v in names}
            cc_curves = {v: mean_curve([r.cc_curve for r in stats_runs[v]]) for v in names}
            steps = max(len(c) for c in if_curves.values())
            every = max(1, steps // 8)
            labels = tuple(str(i + 1) if i % every == 0 else "" for i in range(steps))

            def pad(curve, scale):
                return tuple([scale(v) for v in curve] + [None] * (steps - len(curve)))

            panels = [Panel(f"{group.name}: training IF (% of 1-5), per step", labels,
                            tuple(Series(v, pad(if_curves[v], _percent_if)) for v in names)),
                      Panel(f"{group.name}: training CC (%), per step", labels,
                            tuple(Series(v, pad(cc_curves[v], lambda x: None if x is None else 100 * x))
                                  for v in names))]
            rows.append(Image.open(line_panels(panels, Path(tmp) / f"{group.name}.png", panel_size=(420, 240))))
        if rows:
            sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
            y = 0
            for row in rows:
                sheet.paste(row, (0, y))
                y += row.height
            sheet.save(out / "reward_curves.png")
            written.append(out / "reward_curves.png")
    categories, per_turn = [], []
    if base is not None:
        categories.append("base")
        per_turn.append(base.overall)
    for variant in VARIANTS:
        runs = stats_runs.get(variant.name)
        if runs:
            categories.append(f"{variant.name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
            per_turn.append([s.mean if s else None for s in aggregate(runs).overall])
    if categories:
        turns = max(len(p) for p in per_turn)
        series = [Series(f"T{t + 1}", tuple(p[t] if t < len(p) else None for p in per_turn)) for t in range(turns)]
        written.append(grouped_bars("EdiVal-O per turn, multi-turn mode (mean over seeds)", categories, series,
                                    out / "per_turn_bars.png"))
    return written


def relative_to_cwd(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_results(out: Path, config: str, overrides: Sequence[str]) -> Path:
    """Re-read everything under out/runs/ and (re)write ablations.md / .json and the plots."""
    base, runs = load_results(out)
    by_variant: dict[str, list[RunResult]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    stats = {name: aggregate(rs) for name, rs in by_variant.items()}
    seeds = sorted({r.seed for r in runs})
    names = [v.name for v in VARIANTS if v.name in by_variant]
    chosen = "all" if len(names) == len(VARIANTS) else ",".join(names) or REFERENCE
    command = " ".join(["python -m experiments.shapes.ablations", "--variants", chosen,
                        "--seeds", ",".join(map(str, seeds or [0])), "--out", relative_to_cwd(str(out)),
                        "--config", relative_to_cwd(config), *overrides])
    timed = [r.seconds for r in runs if r.seconds]
    settings = [f"preset `{relative_to_cwd(config)}`, sweep defaults `{' '.join(SWEEP_DEFAULTS)}`, overrides "
                f"`{' '.join(overrides) or 'none'}`",
                f"held-out chains: {base.num_chains if base else (runs[0].num_chains if runs else '-')}; "
                f"seeds: {', '.join(map(str, seeds)) or '-'}; runs: {len(runs)}",
                "base: the shipped editor `shapes/base`, evaluated once (deterministic)"]
    if timed:
        settings.append("mean time per run (on the machines that made them): training "
                        f"{statistics.fmean(t.get('train_s', 0) for t in timed) / 60:.1f} min, evaluation "
                        f"{statistics.fmean(t.get('eval_s', 0) for t in timed) / 60:.1f} min")
    out.mkdir(parents=True, exist_ok=True)
    write_plots(by_variant, base, out)
    (out / "ablations.md").write_text(render_markdown(stats, base, command, settings))
    (out / "ablations.json").write_text(json.dumps({
        "command": command, "config": relative_to_cwd(config), "overrides": list(overrides), "sweep_defaults": list(SWEEP_DEFAULTS),
        "base": asdict(base) if base else None, "runs": [asdict(r) for r in runs],
        "variants": {n: asdict(s) for n, s in stats.items()}}, indent=1))
    return out / "ablations.md"


