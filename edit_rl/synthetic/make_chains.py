"""Write the synthetic train and held-out chain files.

    python -m edit_rl.synthetic.make_chains --out DIR --train N --heldout M [--image-size 32] [--turns 3]

writes DIR/train.parquet and DIR/heldout.parquet (edit_rl.data.parquet's schema; reference image
inline as PNG, every turn's symbolic target in ``target_state``) and prints the counts per edit
type. Train and held-out come from disjoint seeds and share no chain (edit_rl.synthetic.splits).
"""
from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from edit_rl.data.chain import EditChain
from edit_rl.data.parquet import write_chains
from edit_rl.synthetic.generate import NUM_TURNS
from edit_rl.synthetic.splits import make_splits
from edit_rl.synthetic.world import DEFAULT_IMAGE_SIZE, Geometry

TRAIN_FILE, HELDOUT_FILE = "train.parquet", "heldout.parquet"


def summary(name: str, chains: Sequence[EditChain]) -> str:
    counts = Counter(t.task_type for c in chains for t in c.turns)
    return f"{name}: {len(chains)} chains; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def main(argv: Optional[Sequence[str]] = None) -> tuple[Path, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--train", required=True, type=int, help="number of train chains")
    parser.add_argument("--heldout", required=True, type=int, help="number of held-out chains")
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="image side, 32-64 px")
    parser.add_argument("--turns", type=int, default=NUM_TURNS, help="turns per chain")
    args = parser.parse_args(argv)
    if args.train < 1 or args.heldout < 1 or args.turns < 1:
        parser.error("--train, --heldout and --turns must be >= 1")
    try:
        geometry = Geometry(args.image_size)
    except ValueError as err:
        parser.error(str(err))
    train, heldout = make_splits(args.train, args.heldout, geometry, args.turns)
    train_path = write_chains(train, args.out / TRAIN_FILE)
    heldout_path = write_chains(heldout, args.out / HELDOUT_FILE)
    print(summary(str(train_path), train))
    print(summary(str(heldout_path), heldout))
    return train_path, heldout_path


if __name__ == "__main__":
    main()
