"""Comparing finished evaluations: their folders' ``scores.parquet`` -> summaries -> one report.

Every number is recomputed from the Parquet files (nothing is read from the other reports), so
runs evaluated at different times compare on exactly the same definitions. Labels must tell the
runs apart: a repeated label gets its folder name appended.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from edit_rl.evaluation.bootstrap import paired_differences
from edit_rl.evaluation.report import render_report, write_plots
from edit_rl.evaluation.scores import read_scores
from edit_rl.evaluation.summary import RunSummary, summarize


def load_run(eval_dir: str | Path) -> RunSummary:
    """The summary of one evaluation folder (or scores file)."""
    records, meta = read_scores(eval_dir)
    return summarize(records, meta)


def distinct_labels(runs: Sequence[RunSummary], folders: Sequence[str | Path]) -> list[RunSummary]:
    """The runs, a label seen before getting " (<folder name>)" appended."""
    out, seen = [], set()
    for run, folder in zip(runs, folders):
        label = run.meta.label
        if label in seen:
            label = f"{label} ({Path(folder).name})"
        seen.add(label)
        out.append(dataclasses.replace(run, meta=dataclasses.replace(run.meta, label=label)))
    return out


def load_runs(folders: Sequence[str | Path]) -> list[RunSummary]:
    return distinct_labels([load_run(f) for f in folders], folders)


def write_comparison(folders: Sequence[str | Path], out_dir: str | Path) -> Path:
    """``out_dir/report.md`` and ``out_dir/plots/`` comparing the evaluations in ``folders``; the
    first is the baseline of the deltas and of the paired-bootstrap intervals."""
    if len(folders) < 2:
        raise ValueError(f"a comparison needs at least two evaluation folders, got {len(folders)}")
    out_dir = Path(out_dir)
    scored = [read_scores(f) for f in folders]
    runs = distinct_labels([summarize(records, meta) for records, meta in scored], folders)
    differences = paired_differences(scored[0][0], [(run.meta.label, records)
                                                    for run, (records, _) in zip(runs[1:], scored[1:])])
    plots = write_plots(runs, out_dir / "plots")
    title = "Comparison: " + " vs ".join(r.meta.label for r in runs)
    text = render_report(runs[-1], runs[:-1], plots=plots, root=out_dir, title=title, differences=differences)
    path = out_dir / "report.md"
    path.write_text(text)
    return path
