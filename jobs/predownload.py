"""Fetch a preset's hub models into this node's Hugging Face cache before the job starts.

    python -m jobs.predownload --config jobs/configs/flux_kontext_nft_b200.yaml [--dry-run] [key=value ...]

Needs HF_TOKEN for gated repositories; HF_HOME picks the cache (a shared mount: one download for
all nodes). tiny/ and shipped models are built or shipped locally and skipped.
"""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="python -m jobs.predownload", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML preset")
    parser.add_argument("--dry-run", action="store_true", help="print the repositories, download nothing")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. editor.name_or_path=...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    from edit_rl.config import ConfigError, load_config
    from edit_rl.models.predownload import download, repos_to_fetch

    try:
        repos = repos_to_fetch(load_config(args.config, args.overrides))
    except ConfigError as err:
        raise SystemExit(f"config error: {err}") from None
    print("repositories: " + (", ".join(repos) if repos else "none (every model is local)"), flush=True)
    if not args.dry_run:
        download(repos)
    return repos


if __name__ == "__main__":
    main()
