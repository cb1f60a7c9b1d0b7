"""The README's main job (experiments.shapes.proof): its verdict logic on hand-made numbers, and one tiny
end-to-end run on a local Ray cluster (1 training step on the shipped base editor, 3 held-out chains)
that leaves the whole folder."""
import pytest

from edit_rl.evaluation.summary import ModeSummary, TurnMetrics
from experiments.shapes import proof as shapes_proof


def mode(overall: list[float], marginal: list[float]) -> ModeSummary:
    turns = tuple(TurnMetrics(turn=t + 1, num_chains=10, edival_if=0.0, marginal=m, cc=90.0, cc_pairs=10,
                              overall=o, mean_score=3.0) for t, (o, m) in enumerate(zip(overall, marginal)))
    return ModeSummary("multi_turn", 10, turns, (), drop=marginal[0] - marginal[-1], fallbacks=0)


def test_targets_need_ten_overall_points_at_the_last_turn_and_a_smaller_drop():
    base = mode([40.0, 25.0, 12.0], [60.0, 40.0, 30.0])  # drop 30
    met = shapes_proof.proof_checks(base, mode([45.0, 33.0, 22.0], [62.0, 50.0, 45.0]))  # +10.0, drop 17
    assert [c.passed for c in met] == [True, True]
    assert (met[0].base, met[0].tuned, met[1].base, met[1].tuned) == (12.0, 22.0, 30.0, 17.0)
    short = shapes_proof.proof_checks(base, mode([45.0, 33.0, 21.9], [70.0, 50.0, 40.0]))  # +9.9, drop 30
    assert [c.passed for c in short] == [False, False]
    assert "NOT met" in short[0].line() and "base 12.0 -> tuned 21.9" in short[0].line()
    # Beside each target, the paired bootstrap's difference and whether its interval excludes 0.
    from edit_rl.evaluation.bootstrap import Interval
    wide, narrow = Interval(3.5, 3.8, -3.1, 12.0, 0.95, 1000), Interval(-13.0, 2.0, -17.0, -9.0, 0.95, 1000)
    shown = shapes_proof.proof_checks(base, mode([45.0, 33.0, 15.5], [70.0, 50.0, 57.0]), intervals=(wide, narrow))
    assert "difference +3.5 ± 3.8 (95% interval -3.1 to +12.0), NOT distinguishable from 0" in shown[0].line()
    assert shown[1].passed and shown[1].line().endswith("-13.0 ± 2.0 (95% interval -17.0 to -9.0), distinguishable from 0")
    # No Overall (no CC pairs) counts as 0.
    assert shapes_proof.proof_checks(mode([10.0, 5.0, None], [50, 20, 0]), base)[0].tuned == 12.0


def test_last_lora_is_the_newest_finished_checkpoint(tmp_path):
    for name in ("step_000010", "step_000020", "step_000030.tmp"):
        (tmp_path / "checkpoints" / name / "lora").mkdir(parents=True)
    assert shapes_proof.last_lora(tmp_path) == tmp_path / "checkpoints" / "step_000020" / "lora"
    with pytest.raises(SystemExit, match="no checkpoint"):
        shapes_proof.last_lora(tmp_path / "empty")
    assert shapes_proof.lora_step(shapes_proof.last_lora(tmp_path)) == 20


def test_the_proof_says_how_many_steps_trained_and_when_the_budget_ended_them():
    assert shapes_proof.training_line(750.0, 50, 50, 14.0) == "Training 12.5 min, 50 of 50 steps."
    assert shapes_proof.training_line(840.0, 33, 50, 14.0) == \
        "Training 14.0 min, 33 of 50 steps (stopped by `trainer.time_budget_minutes=14`)."



def test_one_step_then_both_evaluations_and_the_proof(tmp_path, local_ray, capsys):
    run = shapes_proof.main(["--output-dir", str(tmp_path), "trainer.num_steps=1", "rollout.groups_per_step=1",
                             "rollout.group_size=4", "rollout.chains_per_request=1", "evaluation.synthetic_chains=3",
                             "evaluation.num_grids=1", "evaluation.chains_per_request=3"])
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/step_000001/lora/pytorch_lora_weights.safetensors",
                 "eval-base/report.md", "eval-tuned/report.md", "eval-tuned/plots/per_turn_multi_turn.png",
                 "proof.md"):
        assert (run / name).is_file(), name
    proof = (run / "proof.md").read_text()
    assert "Table 1 layout" in proof and "Table 7 layout" in proof and proof.count("met]") == 2
    assert "| base |" in proof and "| + MT-EditFlow NFT |" in proof
    assert "3 held-out" not in proof and "Held-out chains: 3" in proof and ", 1 of 1 steps." in proof
    assert "time_budget_minutes: 14.0" in (run / "config.yaml").read_text()  # the main job's training budget
    assert "## Targets" in capsys.readouterr().out
    assert proof.count("95% interval") == 2 and "paired bootstrap over the held-out chains" in proof
