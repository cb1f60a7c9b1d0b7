"""The command line every benchmark script shares: which worlds, quick or full."""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.system import WORLDS


def parse(description: str, argv: list[str] | None, worlds: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    if worlds:
        parser.add_argument("--world", choices=[*WORLDS, "both"], default="both",
                            help="cpu: the CPU default (tiny VLM judge on vLLM, tiny EdiVal-CC); "
                                 "synthetic: the shapes world's rubric judge and CC; both (default)")
    parser.add_argument("--quick", action="store_true", help="few repetitions: checks that it runs, not the figure")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if worlds:
        args.worlds = list(WORLDS) if args.world == "both" else [args.world]
    return args
