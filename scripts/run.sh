#!/usr/bin/env bash
# Quick start, command 1: set up .venv/ (first time only) and run the main job on its CPU default.
# Extra arguments go to the job.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m jobs.train "$@"
