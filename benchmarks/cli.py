"""The command line every benchmark script shares: which worlds, quick or full."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from actors.ray_session import disconnect
from benchmarks.report import Figure, save, show
from benchmarks.system import WORLDS


def parse(description: str, argv: list[str] | None, worlds: bool = True,
          add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """--quick and --json for every script, --world unless ``worlds`` is False, and the script's own
    options from ``add_arguments(parser)``."""
    parser = argparse.ArgumentParser(description=description)
    if worlds:
        parser.add_argument("--world", choices=[*WORLDS, "both"], default="both",
                            help="cpu: the CPU default (tiny VLM judge on vLLM, tiny EdiVal-CC); "
                                 "synthetic: the shapes world's rubric judge and CC; both (default)")
    parser.add_argument("--quick", action="store_true", help="few repetitions: checks that it runs, not the figure")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    if worlds:
        args.worlds = list(WORLDS) if args.world == "both" else [args.world]
    return args


def run_worlds(description: str, argv: list[str] | None,
               measure_world: Callable[[str, bool], list[Figure]]) -> list[Figure]:
    """The ``main`` of a benchmark that starts the Ray system per world: for each chosen world,
    ``measure_world(world, quick)`` (which owns the system it starts); its figures are printed,
    Ray is stopped at the end (also on an error), and --json saves them."""
    args = parse(description, argv)
    figures: list[Figure] = []
    try:
        for world in args.worlds:
            figures += show(measure_world(world, args.quick))
    finally:
        disconnect()
    if args.json:
        save(figures, args.json)
    return figures
