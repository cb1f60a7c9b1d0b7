"""MT-EditFlow training on Ray: the entrypoint users run or submit.

    python -m jobs.train [--config jobs/configs/<preset>.yaml] [--output-dir DIR] [--resume [RUN_DIR]] [key=value ...]
    ray job submit --address http://127.0.0.1:8265 --working-dir . --runtime-env cluster/runtime_env.yaml \
        -- python -m jobs.train --config ...

Without --config it runs the CPU default (jobs/configs/cpu_tiny.yaml). Without a cluster address
(--address or $RAY_ADDRESS, which `ray job submit` sets) it starts a local Ray.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "cpu_tiny.yaml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML preset (default: the CPU default)")
    parser.add_argument("--output-dir", default=None, help="parent folder of the run folder (default: output_dir)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None,
                        help="continue a run: its folder, or the newest run of this run_name")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or local)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. learner.lr=1e-4")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    from edit_rl.config import ConfigError, load_config
    from edit_rl.observability import create_run_dir

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None
    from actors.ray_session import connect
    from actors.trainer import Trainer

    resume_dir = None if args.resume in (None, "latest") else args.resume
    run = create_run_dir(cfg, output_dir=args.output_dir, run_dir=resume_dir, resume=args.resume is not None)
    print(f"run folder: {run.path}", flush=True)
    print(f"ray: {connect(args.address or cfg.cluster.address)}", flush=True)
    trainer = Trainer(cfg, run)
    try:
        trainer.fit()
    finally:
        trainer.close()
    print(f"done: {run.path}", flush=True)
    return run.path


if __name__ == "__main__":
    main()
