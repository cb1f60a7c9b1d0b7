#!/usr/bin/env bash
# Quick start, command 1: set up .venv/ (first time only) and run the main job: MT-EditFlow NFT on the
# shapes world through the Ray system, then base vs tuned on held-out chains (experiments/shapes/proof.py).
# Extra arguments go to the job (e.g. trainer.num_steps=10 for a shorter run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m experiments.shapes.proof "$@"
