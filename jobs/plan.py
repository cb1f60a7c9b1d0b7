"""Plan a GPU preset without a GPU: memory per role, placement, step balance, bytes per step.

    python -m jobs.plan --config jobs/configs/flux_kontext_nft_b200.yaml [--gpu b200] [key=value ...]

Builds the real architectures on the meta device and fake tensors (no weights, no downloads).
Exits 0 when the preset fits, 1 when it cannot run (naming the role and the numbers), 2 on a
usage error.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from edit_rl.config.loader import load_config
from edit_rl.config.schema import ConfigError
from edit_rl.planning.cards import CARDS, card
from edit_rl.planning.report import make_plan, render


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m jobs.plan", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="a preset YAML (jobs/configs/...)")
    parser.add_argument("--gpu", choices=sorted(CARDS), help="the card (default: the preset's cluster.gpu_type)")
    parser.add_argument("--utilisation", type=float, default=0.4, help="assumed share of bf16 peak (default 0.4)")
    parser.add_argument("--max-nodes", type=int, help="refuse presets that need more nodes")
    parser.add_argument("overrides", nargs="*", help="dotted key=value config overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    gpu = args.gpu or cfg.cluster.gpu_type
    if gpu is None:
        print(f"{args.config}: not a GPU preset (cluster.gpu_type is unset); pass --gpu", file=sys.stderr)
        return 2
    if cfg.editor.family == "shapes_kontext":
        print("the shapes editor runs on CPU; nothing to plan", file=sys.stderr)
        return 2
    plan = make_plan(cfg, card(gpu), args.utilisation, args.max_nodes)
    print(render(plan, "# python -m jobs.plan " + shlex.join(argv)))
    return 1 if plan.problems else 0


if __name__ == "__main__":
    sys.exit(main())
