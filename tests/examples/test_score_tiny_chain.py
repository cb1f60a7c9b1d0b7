"""The one-chain script runs as a user would and prints every model-side figure."""
import re
import subprocess
import sys

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_score_tiny_chain_prints_shapes_both_judge_backends_and_cc_terms():
    out = subprocess.run([sys.executable, "-m", "examples.score_tiny_chain"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "turn images [(64, 64, 3), (64, 64, 3), (64, 64, 3)]" in text
    scores = {b: re.search(rf"judge \({b}\s*\): per-turn scores \[([^\]]+)\]", text).group(1)
              for b in ("vllm", "transformers")}
    values = {b: [float(v) for v in s.split(",")] for b, s in scores.items()}
    assert len(values["vllm"]) == 3 and all(1.0 <= v <= 5.0 for v in values["vllm"])
    gap = float(re.search(r"max \|p_vllm - p_transformers\| = (\S+)", text).group(1))
    assert gap <= 1e-5
    cc_lines = re.findall(r"CC turn (\d) .*object (\S+)\s+background (\S+)\s+CC (\S+)", text)
    assert [c[0] for c in cc_lines] == ["1", "2", "3"]
    assert cc_lines[2][2] == "skipped"  # turn 3 changes the background: that term is not measured
