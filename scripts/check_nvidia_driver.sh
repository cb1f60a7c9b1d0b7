#!/usr/bin/env bash
# The CUDA 13 wheels that requirements-gpu.txt pins (torch 2.13.0 and the vllm 0.32.0 built on it)
# need NVIDIA driver >= 580; with an older driver torch sees no GPU. Run by scripts/setup.sh for
# EDIT_RL_STACK=gpu. A node without a readable driver (the CPU-only head) is skipped with a note.
set -euo pipefail
min=580
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "[setup] no nvidia-smi on this node: NVIDIA driver check skipped (a CPU-only node such as the head)" >&2
  exit 0
fi
version="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ' || true)"
if [ -z "$version" ]; then
  echo "[setup] nvidia-smi reports no GPU driver: NVIDIA driver check skipped" >&2
  exit 0
fi
major="${version%%.*}"
if ! [[ "$major" =~ ^[0-9]+$ ]]; then
  echo "[setup] cannot read the NVIDIA driver version from nvidia-smi: '$version'" >&2
  exit 1
fi
if [ "$major" -lt "$min" ]; then
  echo "[setup] NVIDIA driver $version is older than $min, which the CUDA 13 builds of torch 2.13.0 and vllm" \
       "0.32.0 in requirements-gpu.txt need. Upgrade the node's driver to >= $min (a newer GPU image or" \
       "GPU operator). No CUDA 12 variant of these pins is offered (README, Installation details)." >&2
  exit 1
fi
echo "[setup] NVIDIA driver $version (>= $min)" >&2
