"""The base-editor pre-training script (a few steps), and the checkpoint that ships with the repo."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edit_rl.editors.load import load_editor
from edit_rl.models.registry import resolve_model
from edit_rl.synthetic.editor_eval import evaluate_editor
from edit_rl.synthetic.splits import make_split
from jobs import pretrain_shapes_editor as job

SHIPPED = "shapes/base"


def test_learning_rate_warms_up_then_anneals_over_the_budget():
    peak, final = 2e-3, 2e-3 * job.FINAL_LR_FRACTION
    assert [job.learning_rate(s, 0.0, peak, 100) for s in (0, 49, 99, 100)] == \
        pytest.approx([2e-5, 1e-3, 2e-3, 2e-3])
    assert [job.learning_rate(1000, p, peak, 100) for p in (0.5, 1.0)] == pytest.approx([(peak + final) / 2, final])
    assert job.budget_progress(30, 60.0, steps=100, minutes=None) == 0.3
    assert job.budget_progress(30, 60.0, steps=100, minutes=2.0) == 0.5  # the time budget runs out first
    assert job.budget_progress(30, 60.0, steps=None, minutes=4.0) == 0.25


def test_a_few_steps_write_a_loadable_checkpoint_and_its_report(tmp_path, capsys):
    out = tmp_path / "ckpt"
    report = job.main(["--out", str(out), "--steps", "3", "--train-chains", "8", "--heldout-chains", "2",
                       "--eval-steps", "2", "--log-every", "1", "--lr", "0.01", "--warmup", "1"])
    log = capsys.readouterr().out
    assert "data: 8 train chains (24 turns), 2 held-out chains" in log
    assert [line.split("|")[0].strip() for line in log.splitlines() if line.startswith("step")] == \
        ["step      1", "step      2", "step      3"]
    assert report["train"]["steps"] == 3 and report["train"]["samples"] == 3 * 32
    assert json.loads((out / job.REPORT_JSON).read_text())["train"]["steps"] == 3
    assert report["train"]["stopped_by"] == "steps"
    assert f"--out {out} --steps 3 --seed 0 --threads 1 --train-chains 8" in (out / job.REPORT_MD).read_text()
    ev = report["eval"]
    assert ev["num_chains"] == 2 and len(ev["marginal"]) == len(ev["cumulative"]) == len(ev["clean"]) == 3
    assert ev["single_turn"] == 0.0  # 3 steps learn nothing

    weights = load_file(out / "transformer" / "diffusion_pytorch_model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.float16}
    editor = load_editor(job.editor_config(str(out)))
    untrained = load_editor(job.editor_config(resolve_model("tiny/shapes-kontext")))
    trained = dict(editor.transformer.named_parameters())  # Adam moves every weight by ~lr per step
    assert all(not torch.allclose(p, trained[n], atol=1e-3) for n, p in untrained.transformer.named_parameters())
