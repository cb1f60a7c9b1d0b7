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
from experiments.shapes import pretrain_editor as job

SHIPPED = "shapes/base"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


@pytest.mark.slow
def test_the_shipped_checkpoint_is_small_and_succeeds_on_held_out_single_turns():
    folder = Path(resolve_model(SHIPPED))
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 15 * 2**20
    report = json.loads((folder / job.REPORT_JSON).read_text())
    marginal = report["eval"]["marginal"]
    assert marginal[0] > marginal[2]  # exposure bias: worse at turn 3 on its own outputs

    # Held-out seeds (odd) are disjoint from the train seeds (even). 16 chains: 48 single turns.
    chains = make_split("heldout", 16)
    result = evaluate_editor(load_editor(job.editor_config(SHIPPED)), chains, num_steps=8, seed=0)
    untrained = evaluate_editor(load_editor(job.editor_config("tiny/shapes-kontext")), chains[:2], num_steps=8)
    assert untrained.single_turn == 0.0
    assert result.single_turn >= 2 / 48, result  # report.md: 32% over 600 held-out turns
    assert result.clean_by_type["subject_remove"] >= 0.4, result  # its best kind: 96% in report.md


def test_edit_weights_up_weight_exactly_the_changed_pixels_in_token_layout():
    inputs = torch.zeros(1, 3, 8, 8)
    targets = inputs.clone()
    targets[0, 1, 5, 2] = 0.5  # one pixel changes in one channel: all three of its channels weigh 1 + 3
    weights = job.edit_weights(inputs, targets, 3.0)
    assert weights.shape == (1, 4, 48)  # 2 x 2 tokens of 4 x 4 x 3
    assert int((weights == 4.0).sum()) == 3 and int((weights == 1.0).sum()) == 4 * 48 - 3
    token = 1 * 2 + 0  # pixel row 5, col 2 -> token row 1, col 0
    assert int((weights[0, token] == 4.0).sum()) == 3
    # sum(w d^2) / sum(w): d = 1 on the heavy entries, 0 elsewhere -> 3 * 4 / (3 * 4 + 189)
    prediction = (weights == 4.0).float()
    loss = job.edit_weighted_mse(prediction, torch.zeros_like(prediction), weights)
    assert loss.item() == pytest.approx(12 / (12 + 189))
    plain = job.edit_weighted_mse(prediction, torch.zeros_like(prediction), torch.ones_like(weights))
    assert plain.item() == pytest.approx(torch.nn.functional.mse_loss(prediction, torch.zeros_like(prediction)).item())


def test_the_reproduce_command_names_the_init_folder_and_the_edit_weight():
    report = {"args": {"out": "o", "minutes": None, "seed": 0, "threads": 1, "train_chains": 10, "hidden": 128,
                       "batch_size": 32, "lr": 0.001, "warmup": 50, "edit_weight": 3.0, "init": "prev"},
              "train": {"steps": 7, "stopped_by": "steps"}}
    assert job.reproduce_command(report) == ("python -m experiments.shapes.pretrain_editor --out o --init prev --steps 7 "
                                             "--seed 0 --threads 1 --train-chains 10 --hidden 128 --batch-size 32 "
                                             "--lr 0.001 --warmup 50 --edit-weight 3.0")


def test_kind_weights_parse_and_set_how_often_each_kind_is_drawn():
    assert job.parse_kind_weights("subject_add=4, position_change=2.5") == {"subject_add": 4.0, "position_change": 2.5}
    assert job.parse_kind_weights("") == {}
    for bad in ("subject_add", "jumping=2", "subject_add=-1", "subject_add=nan"):
        with pytest.raises(ValueError, match="--kind-weights"):
            job.parse_kind_weights(bad)
    kinds = ("color_alter", "subject_add", "subject_add", "subject_remove")
    assert job.pair_sampling_weights(kinds, {}) is None  # uniform: the shipped runs' exact draws
    assert job.pair_sampling_weights(kinds, {"subject_remove": 1.0}) is None
    weights = job.pair_sampling_weights(kinds, {"subject_add": 4.0, "subject_remove": 0.0})
    assert weights.tolist() == [1.0, 4.0, 4.0, 0.0]
    draws = torch.multinomial(weights, 9000, replacement=True, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(draws, minlength=4).double() / 9000
    assert shares.tolist() == pytest.approx([1 / 9, 4 / 9, 4 / 9, 0.0], abs=0.02)
    with pytest.raises(ValueError, match="no turn"):
        job.pair_sampling_weights(kinds, {k: 0.0 for k in kinds})
    with pytest.raises(SystemExit):  # a bad value stops the command line before any data is built
        job.parse_args(["--kind-weights", "subject_add=x"])


def test_the_reproduce_command_names_kind_weights_and_t_mean_only_when_set():
    args = {"out": "o", "minutes": None, "seed": 0, "threads": 2, "train_chains": 10, "hidden": 128,
            "batch_size": 32, "lr": 0.002, "warmup": 100, "edit_weight": 3.0, "init": None}
    train = {"steps": 5, "stopped_by": "steps"}
    plain = job.reproduce_command({"args": {**args, "kind_weights": "", "t_mean": 0.0}, "train": train})
    assert "--kind-weights" not in plain and "--t-mean" not in plain
    weighted = job.reproduce_command({"args": {**args, "kind_weights": "subject_add=3", "t_mean": 0.5}, "train": train})
    assert weighted.endswith("--edit-weight 3.0 --kind-weights subject_add=3 --t-mean 0.5")


def test_the_image_size_is_named_in_the_reproduce_command_only_when_not_the_default():
    args = {"out": "o", "minutes": None, "seed": 0, "threads": 2, "train_chains": 10, "hidden": 128,
            "batch_size": 32, "lr": 0.002, "warmup": 100, "edit_weight": 3.0, "init": None}
    train = {"steps": 5, "stopped_by": "steps"}
    assert "--image-size" not in job.reproduce_command({"args": {**args, "image_size": 32}, "train": train})
    assert "--image-size" not in job.reproduce_command({"args": args, "train": train})  # reports before the flag
    assert job.reproduce_command({"args": {**args, "image_size": 36}, "train": train}).endswith(
        "--edit-weight 3.0 --image-size 36")


def test_a_36_px_run_trains_and_evaluates_on_36_px_chains(tmp_path):
    out = tmp_path / "ckpt36"
    report = job.main(["--out", str(out), "--steps", "1", "--train-chains", "4", "--heldout-chains", "2",
                       "--eval-steps", "1", "--image-size", "36"])
    assert report["args"]["image_size"] == 36 and report["eval"]["num_chains"] == 2
    editor = load_editor(job.editor_config(str(out), 36))
    assert editor.resolution == 36 and editor.target_ids.shape[0] == 9 * 9  # 3 x 3 patches per 12 px cell
