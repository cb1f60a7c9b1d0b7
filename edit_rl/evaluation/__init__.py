"""Multi-turn evaluation, EdiVal-compatible: chains from EdiVal's instruction file, Parquet or the
synthetic world; the benchmark's metrics (EdiVal-IF / -CC / -O, marginal success and its drop);
scores as Parquet; markdown reports with plots, and comparisons of runs. No Ray: the job that
generates and scores the chains is ``jobs/evaluate.py``.
"""
from edit_rl.evaluation.compare import load_run, load_runs, write_comparison
from edit_rl.evaluation.edival_csv import EdivalFileError, EdivalLoadResult, load_edival_chains
from edit_rl.evaluation.metrics import (
    CCTerms,
    cumulative_success,
    edival_cc,
    edival_if,
    edival_overall,
    marginal_success,
    rounded_delta,
    success_drop,
    turn_succeeded,
)
from edit_rl.evaluation.report import render_report, write_plots
from edit_rl.evaluation.scores import MODES, EvalMeta, TurnRecord, read_scores, write_scores
from edit_rl.evaluation.sources import EvalData, load_eval_chains
from edit_rl.evaluation.summary import ModeSummary, RunSummary, TurnMetrics, TypeMetrics, summarize

__all__ = [
    "CCTerms", "EdivalFileError", "EdivalLoadResult", "EvalData", "EvalMeta", "MODES", "ModeSummary",
    "RunSummary", "TurnMetrics", "TurnRecord", "TypeMetrics", "cumulative_success", "edival_cc", "edival_if",
    "edival_overall", "load_edival_chains", "load_eval_chains", "load_run", "load_runs", "marginal_success",
    "read_scores", "render_report", "rounded_delta", "success_drop", "summarize", "turn_succeeded",
    "write_comparison", "write_plots", "write_scores",
]
