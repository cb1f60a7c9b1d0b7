#!/usr/bin/env bash
# Quick start, command 2: set up .venv/ if needed and run the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/edit_rl/flow -x). Quick run without the
# tests marked slow (every test that starts Ray, and those over ~20 s): scripts/test.sh -m "not slow".
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m pytest "${@:-tests}" -q -p no:cacheprovider --durations=15
