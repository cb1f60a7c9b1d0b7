"""The driver imports the Ray system (actors.trainer, which imports every actor module for its class
and request types) without the model stack: diffusers, transformers and peft load only in the
actors that hold models (results/benchmarks.md, memory)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL_STACK = ("diffusers", "transformers", "peft", "vllm", "deepspeed")


def test_driver_import_leaves_the_model_stack_to_the_actors():
    code = ("import sys, actors.trainer, actors.evaluator; "
            f"print(sorted(m for m in {MODEL_STACK!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"
