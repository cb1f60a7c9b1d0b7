"""The benchmark suite keeps running: the quick mode of one cheap script (scoring, synthetic world:
a tiny-editor rollout and the shapes world's scorers, no Ray) as a user runs it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scoring_quick_prints_and_saves_its_ratios(tmp_path):
    out = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks.scoring", "--quick", "--world", "synthetic",
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = {f["key"]: f for f in json.loads(out.read_text())}
    assert set(figures) == {"scoring/synthetic/judge-synthetic/batched-vs-single",
                            "scoring/synthetic/cc/batched-vs-single"}
    for key, figure in figures.items():
        assert figure["value"] > 0 and key in run.stdout
        assert "img/s" in figure["detail"]
