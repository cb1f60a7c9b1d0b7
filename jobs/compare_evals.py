"""Compare finished evaluations (folders written by jobs.evaluate) without generating anything.

    python -m jobs.compare_evals BASE_EVAL_DIR OTHER_EVAL_DIR [...] --output DIR

Writes DIR/report.md (every table with all runs, deltas to the first, and each run's differences
from the first with paired-bootstrap intervals over the chains: is a gain more than chance?) and
DIR/plots/, all recomputed from the folders' scores.parquet.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m jobs.compare_evals", description=__doc__.split("\n")[0])
    parser.add_argument("eval_dirs", nargs="+", help="evaluation folders; the first is the baseline")
    parser.add_argument("--output", required=True, help="folder for report.md and plots/")
    args = parser.parse_args(argv)
    from edit_rl.evaluation import write_comparison

    path = write_comparison(args.eval_dirs, args.output)
    print(f"done: {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
