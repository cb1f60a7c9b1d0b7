"""The markdown report and its plots, in the papers' layouts.

* EdiVal scores (MT-EditFlow Table 1): one row per run, EdiVal-IF / EdiVal-CC / EdiVal-O at each
  turn; with several runs, a delta row under every run after the first ("+2.27"), computed from
  the printed numbers as the paper's are (:func:`~edit_rl.evaluation.metrics.rounded_delta`).
* Marginal success (MT-EditFlow Table 7): T1..T3 and the T1 -> T3 drop.
* Per edit type: marginal success pooled over turns and per turn, EdiVal-CC, mean judge score;
  with several runs, the pooled success of each run and the deltas to the first.
* Plots (``plots/``): per-turn curves and per-type bars, one colour per run.

The first run is the baseline of every delta (pass the base model first).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from edit_rl.data.parquet import RowError
from edit_rl.evaluation.bootstrap import REPORTED_STATISTICS, PairedDifferences
from edit_rl.evaluation.metrics import rounded_delta
from edit_rl.evaluation.plots import Panel, Series, grouped_bars, line_panels
from edit_rl.evaluation.summary import ModeSummary, RunSummary

MODE_TITLES = {
    "multi_turn": "Multi-turn (turn t edits the output of turn t-1)",
    "single_turn": "Single-turn (every instruction applied to the input image)",
}
MAX_LISTED_ERRORS = 50


def fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}"


def fmt_delta(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:+.2f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _num_turns(modes: Sequence[ModeSummary]) -> int:
    return max(len(m.turns) for m in modes)


def _column(mode: ModeSummary, name: str, t: int) -> Optional[float]:
    return getattr(mode.turns[t], name) if t < len(mode.turns) else None


def edival_table(runs: Sequence[tuple[str, ModeSummary]]) -> str:
    """Table 1's layout: Model | IF T1..Tn | CC T1..Tn | O T1..Tn, delta rows after the first run."""
    n = _num_turns([m for _, m in runs])
    names = ("edival_if", "cc", "overall")
    headers = ["Model"] + [f"{label} T{t + 1}" for label in ("IF", "CC", "O") for t in range(n)]
    rows = []
    base = runs[0][1]
    for i, (label, mode) in enumerate(runs):
        rows.append([label if i == 0 else f"+ {label}"] + [fmt(_column(mode, name, t)) for name in names
                                                           for t in range(n)])
        if i > 0:
            rows.append([f"Δ vs {runs[0][0]}"]
                        + [fmt_delta(rounded_delta(_column(base, name, t), _column(mode, name, t)))
                           for name in names for t in range(n)])
    return markdown_table(headers, rows)


def marginal_table(runs: Sequence[tuple[str, ModeSummary]]) -> str:
    """Table 7's layout: Model | T1..Tn marginal success | drop T1 -> Tn (points)."""
    n = _num_turns([m for _, m in runs])
    headers = ["Model"] + [f"T{t + 1}" for t in range(n)] + [f"Drop T1→T{n}"]
    rows = []
    base = runs[0][1]
    for i, (label, mode) in enumerate(runs):
        rows.append([label if i == 0 else f"+ {label}"] + [fmt(_column(mode, "marginal", t)) for t in range(n)]
                    + [fmt(mode.drop)])
        if i > 0:
            rows.append([f"Δ vs {runs[0][0]}"]
                        + [fmt_delta(rounded_delta(_column(base, "marginal", t), _column(mode, "marginal", t)))
                           for t in range(n)] + [fmt_delta(rounded_delta(base.drop, mode.drop))])
    return markdown_table(headers, rows)


def type_table(mode: ModeSummary) -> str:
    """One run's per-type numbers: n turns, success pooled and per turn, EdiVal-CC, mean score."""
    n = len(mode.turns)
    headers = ["Edit type", "Turns", "Success"] + [f"T{t + 1}" for t in range(n)] + ["CC", "Mean score"]
    rows = [[t.task_type, str(t.num_turns), fmt(t.success)] + [fmt(v) for v in t.success_per_turn]
            + [fmt(t.cc), f"{t.mean_score:.2f}"] for t in mode.types]
    return markdown_table(headers, rows)


def type_comparison_table(runs: Sequence[tuple[str, ModeSummary]]) -> str:
    """Pooled per-type success of every run, and each later run's delta to the first."""
    types = sorted({t.task_type for _, m in runs for t in m.types})
    success = [{t.task_type: t.success for t in m.types} for _, m in runs]
    headers = ["Edit type"] + [label for label, _ in runs] + [f"Δ {label}" for label, _ in runs[1:]]
    rows = [[name] + [fmt(s.get(name)) for s in success]
            + [fmt_delta(rounded_delta(success[0].get(name), s.get(name))) for s in success[1:]] for name in types]
    return markdown_table(headers, rows)


def _runs_of(runs: Sequence[RunSummary], mode: str) -> list[tuple[str, ModeSummary]]:
    return [(r.meta.label, r.modes[mode]) for r in runs if mode in r.modes]


def write_plots(runs: Sequence[RunSummary], folder: str | Path) -> dict[str, Path]:
    """Per mode: ``per_turn_<mode>.png`` (EdiVal-IF, marginal success, EdiVal-CC, EdiVal-O vs
    turn) and ``per_type_<mode>.png`` (pooled success per edit type), every run in its colour."""
    folder = Path(folder)
    out: dict[str, Path] = {}
    for mode in MODE_TITLES:
        chosen = _runs_of(runs, mode)
        if not chosen:
            continue
        n = _num_turns([m for _, m in chosen])
        x = tuple(f"T{t + 1}" for t in range(n))
        panels = [Panel(title, x, tuple(Series(label, tuple(_column(m, name, t) for t in range(n)))
                                        for label, m in chosen))
                  for title, name in (("EdiVal-IF (%)", "edival_if"), ("Marginal success (%)", "marginal"),
                                      ("EdiVal-CC (%)", "cc"), ("EdiVal-O (%)", "overall"))]
        out[f"per_turn_{mode}"] = line_panels(panels, folder / f"per_turn_{mode}.png")
        types = sorted({t.task_type for _, m in chosen for t in m.types})
        series = [Series(label, tuple({t.task_type: t.success for t in m.types}.get(name) for name in types))
                  for label, m in chosen]
        out[f"per_type_{mode}"] = grouped_bars(f"Success per edit type, {mode.replace('_', '-')} (%)", types, series,
                                               folder / f"per_type_{mode}.png")
    return out


PROTOCOL_FIELDS = ("judge", "consistency", "success_threshold", "source", "seed", "sampler", "num_chains")


def protocol_differences(runs: Sequence[RunSummary]) -> list[str]:
    """The evaluation settings (besides editor and LoRA) in which the runs differ."""
    return [name for name in PROTOCOL_FIELDS if len({getattr(r.meta, name) for r in runs}) > 1]


def _setup(run: RunSummary) -> str:
    m = run.meta
    lines = [
        f"- Editor: `{m.editor}`" + (f" + LoRA `{m.lora}`" if m.lora else " (base model, no LoRA)"),
        f"- Sampler: {m.sampler}; seed {m.seed} (the same noise for runs with the same seed, chains and "
        "evaluation.chains_per_request)",
        f"- Judge: `{m.judge}`, single-turn (turn t scored on image t-1 -> image t); a turn succeeds when "
        f"its score >= {m.success_threshold:g}",
        f"- Consistency: `{m.consistency}`, EdiVal-CC of the input image vs each output",
        f"- Data: {m.source}, {m.num_chains} chains" + (f"; {m.skipped_rows} unusable row(s) skipped (listed below)"
                                                          if m.skipped_rows else ""),
        f"- Time: {m.seconds:.0f} s",
    ]
    return "\n".join(lines)


DEFINITIONS = """\
## How the numbers are computed

- A turn succeeds when the single-turn judge's score on (image t-1, image t, instruction t) reaches
  the threshold above (for single-turn mode, image t-1 is the input image).
- EdiVal-IF at turn t: the share of chains whose turns 1..t ALL succeeded (EdiVal-Bench; MT-EditFlow
  Table 1). In single-turn mode the edits are independent: IF is the marginal success.
- Marginal success at turn t: the share of chains whose turn t succeeded (MT-EditFlow Table 7);
  the drop is T1 minus the last turn, in points.
- EdiVal-CC at turn t: EdiVal-CC (Grounding DINO boxes + DINOv3 features) of the input image vs
  turn t's output, averaged as EdiVal's `eval.py` does: pairs from the chain's first background
  change on are left out; CC = (mean object score + mean background score) / 2, times 100.
- EdiVal-O = sqrt(IF x CC). Δ rows: differences of the printed numbers.
- `scores.parquet` holds every turn's judge score, success, and CC terms: every number here can be
  recomputed from it (`edit_rl.evaluation.read_scores` + `summarize`).
"""


def differences_table(differences: Sequence[PairedDifferences], num_turns: int) -> str:
    """One row per compared run: each ``REPORTED_STATISTICS`` difference from the baseline as
    estimate ± bootstrap standard error (95% interval), or why there is none."""
    names = [name.format(last=num_turns) for name, _ in REPORTED_STATISTICS]
    rows = []
    for d in differences:
        if d.intervals:
            rows.append([d.label, *(f"{i.estimate:+.1f} ± {i.std_error:.1f} ({i.low:+.1f} to {i.high:+.1f})"
                                    for i in d.intervals)])
        else:
            rows.append([d.label, *["–"] * (len(names) - 1), f"not paired: {d.reason}"])
    return markdown_table(["Run", *names], rows)


def render_report(run: RunSummary, baselines: Sequence[RunSummary] = (), plots: Optional[dict[str, Path]] = None,
                  grids: Sequence[Path] = (), errors: Sequence[RowError] = (), root: Optional[Path] = None,
                  title: Optional[str] = None, differences: Sequence[PairedDifferences] = ()) -> str:
    """The report of ``run``; with ``baselines`` (other evaluations), every table shows them first
    and ``run`` last, with deltas to the first baseline, and ``differences`` (their paired-bootstrap
    intervals, :func:`edit_rl.evaluation.bootstrap.paired_differences`) below each mode's tables.
    Paths are written relative to ``root``."""
    def rel(path: Path) -> str:
        return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)

    runs = [*baselines, run]
    parts = [f"# {title or 'Multi-turn editing evaluation: ' + run.meta.label}", ""]
    if len(runs) == 1:
        parts += [_setup(run), ""]
    else:
        parts += [f"Runs (deltas are against {runs[0].meta.label}):", ""]
        for one in runs:
            parts += [f"**{one.meta.label}**", "", _setup(one), ""]
        differing = protocol_differences(runs)
        if differing:
            parts += [f"**Warning:** the runs differ in {', '.join(differing)}: their deltas mix evaluation "
                      "protocols, not only editors.", ""]
    for mode, heading in MODE_TITLES.items():
        if mode not in run.modes:
            continue
        chosen = _runs_of(runs, mode)
        summary = run.modes[mode]
        parts += [f"## {heading}", "", f"{summary.num_chains} chains; {summary.fallbacks} unreadable judge answer(s) "
                  "(scored at the judge's lowest value).", "",
                  "### EdiVal scores (MT-EditFlow Table 1 layout)", "", edival_table(chosen), "",
                  "### Marginal success (MT-EditFlow Table 7 layout)", "", marginal_table(chosen), ""]
        in_mode = [d for d in differences if d.mode == mode]
        if in_mode:
            resamples = next((d.intervals[0].num_resamples for d in in_mode if d.intervals), 0)
            parts += [f"### Differences from {runs[0].meta.label}, with uncertainty", "",
                      "Estimate ± standard error (95% interval) of a paired bootstrap over the chains "
                      f"({resamples} resamples, `edit_rl/evaluation/bootstrap.py`), in points; an interval "
                      "that contains 0 is within chance.", "", differences_table(in_mode, len(summary.turns)), ""]
        parts += [f"### Per edit type: {run.meta.label}", "", type_table(summary), ""]
        if len(chosen) > 1:
            parts += ["### Success per edit type, all runs", "", type_comparison_table(chosen), ""]
        for key in (f"per_turn_{mode}", f"per_type_{mode}"):
            if plots and key in plots:
                parts += [f"![{key}]({rel(plots[key])})", ""]
    if grids:
        parts += ["## Per-chain grids", "",
                  "Row 1: multi-turn (input, T1, T2, ...); row 2: single-turn (each instruction on the input). "
                  "Captions: instruction, judge score (IF) and CC (cosine) of the input vs that output.", ""]
        parts += [f"- [{path.stem}]({rel(path)})" for path in grids] + [""]
    if errors:
        parts += ["## Skipped data rows", ""]
        parts += [f"- row {e.row}: {e.reason}" for e in errors[:MAX_LISTED_ERRORS]]
        if len(errors) > MAX_LISTED_ERRORS:
            parts.append(f"- ... and {len(errors) - MAX_LISTED_ERRORS} more")
        parts.append("")
    parts.append(DEFINITIONS)
    return "\n".join(parts)
