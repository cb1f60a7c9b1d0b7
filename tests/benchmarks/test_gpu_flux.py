"""The GPU FLUX.1-Kontext benchmark keeps running: its --tiny mode (the same code on the tiny model,
CPU, float32) as a user runs it, and its refusal to run the full-size model without a GPU."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KEYS = {"gpu/flux-kontext/denoise-step/ours-vs-diffusers", "gpu/flux-kontext/learner/samples-per-s",
        "gpu/flux-kontext/learner/checkpointing-vs-none"}


@pytest.mark.slow
def test_tiny_quick_prints_and_saves_its_figures(tmp_path):
    out = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_flux", "--tiny", "--quick", "--json", str(out)],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = {f["key"]: f for f in json.loads(out.read_text())}
    assert set(figures) == KEYS
    for key, figure in figures.items():
        assert math.isfinite(figure["value"]) and figure["value"] > 0, figure
        assert key in run.stdout
    denoise = figures["gpu/flux-kontext/denoise-step/ours-vs-diffusers"]
    assert "ms/step" in denoise["detail"] and denoise["target"] == "<= 1.0"
    assert figures["gpu/flux-kontext/learner/samples-per-s"]["unit"] == "samples/s"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_full_size_without_a_gpu_exits_saying_so(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks.gpu_flux", "--quick", "--json", str(tmp_path / "f.json")],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "needs a CUDA GPU" in run.stderr and "--tiny" in run.stderr
    assert not (tmp_path / "f.json").exists()
