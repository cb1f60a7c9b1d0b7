"""The GPU check's CPU-testable parts: the whole script on a tiny FLUX on CPU, and the dry run."""
import json

import pytest
import torch

from benchmarks import gpu_first_check as check


def test_whole_script_on_a_tiny_flux_on_cpu(tmp_path, monkeypatch):
    code = check.main(["--device", "cpu", "--size", "tiny", "--resolution", "32", "--text-tokens", "8",
                       "--steps", "2", "--out", str(tmp_path)])
    assert code == 0
    (report,) = tmp_path.glob("*-cpu.json")
    data = json.loads(report.read_text())
    names = [c["check"] for c in data["checks"]]
    assert names == ["environment", "attention kernels", "roles on device", "rollout euler", "rollout sde",
                     "rollout dpm2", "learner step nft", "learner step grpo"]
    assert all(c["ok"] for c in data["checks"])
    assert data["checks"][1]["sdpa"]["MATH"] == "ok"
    placed = data["checks"][2]["components"]
    assert {"editor.transformer", "editor.text_encoder_2", "cc.detector", "cc.features", "judge"} <= set(placed)
    assert all(devices == ["cpu"] for devices in placed.values())
    markdown = report.with_suffix(".md").read_text()
    assert markdown.startswith("# python -m benchmarks.gpu_first_check")


def test_dry_run_reports_the_planner_estimate(tmp_path):
    assert check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    data = json.loads(next(tmp_path.glob("*.json")).read_text())
    planned = data["checks"][-1]
    assert planned["check"] == "planner estimate"
    assert planned["transformer_parameters"] == pytest.approx(11.90e9, rel=0.005)
    assert planned["forward_tflops_per_sample"] > 0


def test_a_failing_check_is_recorded_and_the_rest_run():
    report = check.Report("cpu", "tiny")
    report.run("boom", lambda: 1 / 0)
    report.run("fine", lambda: {"value": 1})
    assert [c["ok"] for c in report.checks] == [False, True]
    assert "ZeroDivisionError" in report.checks[0]["error"]


def test_without_cuda_the_full_run_refuses(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a mock of CUDA: a machine without it
    assert check.main([]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
