"""Build tiny models into the cache and print their folders.

    python -m edit_rl.models.build_tiny                      # every registered tiny model
    python -m edit_rl.models.build_tiny tiny/flux-kontext --dir tiny-models
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from edit_rl.models.registry import TINY_MODELS, build_tiny_model


def main(argv: Sequence[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"tiny model names (default: all of {sorted(TINY_MODELS)})")
    parser.add_argument("--dir", type=Path, default=None,
                        help="cache folder (default: $EDIT_RL_TINY_MODELS or <repo>/.cache/tiny-models)")
    args = parser.parse_args(argv)
    names = args.names or sorted(TINY_MODELS)
    unknown = [n for n in names if n not in TINY_MODELS]
    if unknown:
        parser.error(f"unknown tiny model(s) {unknown}; registered: {sorted(TINY_MODELS)}")
    folders = []
    for name in names:
        folder = build_tiny_model(name, args.dir)
        print(f"{name}\t{folder}", flush=True)
        folders.append(folder)
    return folders


if __name__ == "__main__":
    main()
