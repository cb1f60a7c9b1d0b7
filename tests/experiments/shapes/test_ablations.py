"""The ablation sweep (experiments.shapes.ablations): its numbers (mean / std over seeds, reward curves,
the readings, the markdown) on hand-made values, its variant table against the config schema, and
one tiny sweep on a local Ray cluster (2 variants x 1 seed, 1 training step, 3 held-out chains)
that is then run again and skips everything."""
import json
import math
import shutil

import pytest

from edit_rl.config import load_config
from experiments.shapes import ablation_report as report
from experiments.shapes import ablations as sweep
from experiments.shapes.ablation_report import RunResult, Stat


def test_mean_std_is_the_sample_std_and_zero_for_one_seed():
    s = report.mean_std([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3)
    assert report.mean_std([5.0]) == Stat(5.0, 0.0, 1)
    assert report.mean_std([None, 4.0, float("nan")]) == Stat(4.0, 0.0, 1)  # missing values are not counted
    assert report.mean_std([]) is None and report.mean_std([None]) is None
    assert Stat(12.345, 1.25, 3).fmt() == "12.3 ± 1.2" and Stat(2.5, 0.125, 2).fmt(2) == "2.50 ± 0.12"


def test_reward_curves_average_the_turns_of_each_step_in_step_order():
    rows = [{"step": 1, "reward": {"if_turn": [3.0, 2.0, 1.0], "cc_turn": [0.9, 0.8, 0.7]}},
            {"step": 0, "reward": {"if_turn": [5.0, 4.0, 3.0], "cc_turn": [1.0, 1.0, 0.7]}},
            {"step": 2, "reward": {"if_turn": [], "cc_turn": []}}]  # no group that step
    if_curve, cc_curve = report.reward_curves(rows)
    assert if_curve == [4.0, 2.0, None]
    assert cc_curve[:2] == pytest.approx([0.9, 0.8]) and cc_curve[2] is None
    assert report.final_value([1.0, None, 2.0, 3.0, 4.0, 5.0, 6.0], window=5) == 4.0  # mean of 2..6
    assert report.final_value([None, 3.0], window=5) == 3.0 and report.final_value([None]) is None
    assert report.mean_curve([[1.0, 2.0, 3.0], [3.0, None]]) == [2.0, 2.0, 3.0]


def run(variant, seed, overall, drop=10.0, train_if=3.0, train_cc=0.9, cc_weight=0.15, marginal=None):
    return RunResult(variant=variant, seed=seed, overall=list(overall), edival_if=[50.0, 40.0, overall[-1]],
                     cc=[90.0, 90.0, 90.0], marginal=marginal or [60.0, 55.0, 50.0], drop=drop, num_chains=10,
                     train_if=train_if, train_cc=train_cc, cc_weight=cc_weight)


def test_aggregate_over_seeds():
    s = report.aggregate([run("binary-and", 2, [30.0, 20.0, 10.0], drop=8.0, train_cc=0.8),
                         run("binary-and", 0, [34.0, 22.0, 14.0], drop=12.0, train_cc=0.9)])
    assert s.seeds == (0, 2) and s.overall[0] == Stat(32.0, math.sqrt(8.0), 2)
    assert s.overall[2].mean == 12.0 and s.drop.mean == 10.0 and s.last_if.mean == 12.0
    assert s.train_cc.mean == pytest.approx(85.0)  # percent
    assert s.cc_weight == 0.15
    one = report.aggregate([run("grpo", 1, [30.0, None, 10.0])])
    assert one.overall[1] is None and one.overall[2] == Stat(10.0, 0.0, 1) and one.seeds == (1,)


def test_group_reading_compares_with_the_reference_with_the_standard_error():
    stats = {"mt-editflow": report.aggregate([run("mt-editflow", s, [40.0, 30.0, o], drop=d)
                                             for s, o, d in ((0, 20.0, 10.0), (1, 22.0, 12.0), (2, 24.0, 14.0))]),
             "binary-and": report.aggregate([run("binary-and", s, [40.0, 30.0, o], drop=d)
                                            for s, o, d in ((0, 10.0, 11.0), (1, 12.0, 14.0), (2, 14.0, 14.0))]),
             "binary-avg": report.aggregate([run("binary-avg", 0, [40.0, 30.0, 23.0])])}
    group = next(g for g in report.GROUPS if g.name == "if-strategy")
    text = report.group_reading(group, stats)
    # T3: 12 - 22 = -10, se sqrt(4/3 + 4/3) = 1.63; drop 13 - 12 = +1, se sqrt(3/3 + 4/3) = 1.53.
    assert "binary-and below mt-editflow by 10.0 ± 1.6 points of T3 EdiVal-O (beyond 2 standard errors)" in text
    assert "its drop larger than the reference's by 1.0 ± 1.5 points" in text and "not distinguishable" in text
    # One seed of binary-avg: its spread is unknown (se counts only the reference's).
    assert "binary-avg above mt-editflow by 1.0 ± 1.2 points of T3 EdiVal-O (one seed: no error estimate)" in text
    assert report.group_reading(group, {}) == "no finished runs yet."
    assert "no mt-editflow runs" in report.group_reading(group, {"binary-and": stats["binary-and"]})
    single = {n: report.aggregate([run(n, 0, [1.0, 1.0, o])]) for n, o in (("mt-editflow", 5.0), ("grpo", 5.0))}
    assert report.group_reading(report.GROUPS[3], single).startswith(
        "grpo equal to mt-editflow in T3 EdiVal-O (one seed: no error estimate)")


def test_lambda_reading_reports_the_trend_the_best_lambda_and_whether_cc_was_hacked():
    lam = next(g for g in report.GROUPS if g.name == "lambda")
    stats = {n: report.aggregate([run(n, 0, [30.0, 20.0, o], train_if=i, train_cc=c, cc_weight=w)])
             for n, w, o, i, c in (("lambda-3", 3.0, 5.0, 1.5, 0.99), ("lambda-0", 0.0, 15.0, 3.0, 0.8),
                                   ("mt-editflow", 0.15, 18.0, 2.9, 0.85))}
    text = report.group_reading(lam, stats)
    assert text.startswith("lambda 0 -> 3: training IF 3.00 -> 1.50, training CC 80.0 -> 99.0")
    assert "best T3 EdiVal-O at lambda 0.15 (18.0 ± 0.0)" in text
    assert "CC up and IF down in the training rewards (one seed: no error estimate)" in text

    def seeds(name, weight, ifs, ccs):
        return report.aggregate([run(name, s, [30.0, 20.0, 10.0], train_if=i, train_cc=c, cc_weight=weight)
                                for s, (i, c) in enumerate(zip(ifs, ccs))])

    low = seeds("lambda-0", 0.0, (3.0, 3.1, 2.9), (0.80, 0.81, 0.79))
    clear = {"lambda-0": low, "lambda-3": seeds("lambda-3", 3.0, (1.5, 1.6, 1.4), (0.99, 0.98, 0.97))}
    assert "seen in the training rewards (both beyond 2 standard errors)" in report.group_reading(lam, clear)
    # IF 3.0 -> 2.9 with seed spread 0.1: se sqrt(0.01/3 + 0.01/3) = 0.08, so the fall is noise.
    noisy = {"lambda-0": low, "lambda-3": seeds("lambda-3", 3.0, (2.8, 3.0, 2.9), (0.90, 0.91, 0.89))}
    assert ("CC up 10.0 ± 0.8 and IF down 0.10 ± 0.08 in the training rewards, not both beyond 2 standard errors: "
            "not distinguishable") in report.group_reading(lam, noisy)
    stats["lambda-3"] = report.aggregate([run("lambda-3", 0, [30.0, 20.0, 5.0], train_if=3.5, train_cc=0.99,
                                             cc_weight=3.0)])
    assert "not seen in the training rewards" in report.group_reading(lam, stats)
    assert report.group_reading(lam, {"lambda-0": stats["lambda-0"]}) == "fewer than two lambdas finished."


def test_markdown_has_the_command_a_table_per_group_with_the_base_first():
    base = RunResult("base", None, [30.0, 15.0, 5.0], [40.0, 20.0, 6.0], [88.0, 87.0, 86.0],
                     [40.0, 30.0, 20.0], 20.0, 10)
    stats = {"mt-editflow": report.aggregate([run("mt-editflow", s, [40.0, 30.0, o])
                                             for s, o in ((0, 20.0), (1, 24.0))])}
    md = report.render_markdown(stats, base, "python -m experiments.shapes.ablations --variants mt-editflow", ["preset x"])
    assert "    python -m experiments.shapes.ablations --variants mt-editflow" in md and "- preset x" in md
    assert md.count("| variant | seeds | EdiVal-O T1 | EdiVal-O T2 | EdiVal-O T3 |") == len(report.GROUPS)
    table = md.split("## IF reward")[1]
    assert table.index("| base | - | 30.0 | 15.0 | 5.0 | 6.0 | 86.0 | 20.0 | 20.0 | - | - |") \
        < table.index("| mt-editflow | 2 (0,1) | 40.0 ± 0.0 | 30.0 ± 0.0 | 22.0 ± 2.8 |")
    assert "| 3.00 ± 0.00 | 90.0 ± 0.0 |" in table
    assert "binary-and" not in table.split("Reading")[0].split("|---|")[1]  # no rows for unfinished variants
    assert "Reading: only mt-editflow has finished runs." in md
    assert "The base row is ONE evaluation" in md.split("## Variants")[0]  # read variants against each other


def test_every_variant_is_a_valid_config_that_changes_what_it_says():
    names = [v.name for v in report.VARIANTS]
    assert len(set(names)) == len(names) and all(n in names for g in report.GROUPS for n in g.variants)
    preset = str(sweep.DEFAULT_CONFIG)
    cfgs = {v.name: load_config(preset, [*report.SWEEP_DEFAULTS, *v.overrides, "trainer.seed=2"])
            for v in report.VARIANTS}
    ref = cfgs["mt-editflow"].reward
    assert (ref.if_strategy, ref.fusion, ref.advantage_mode, ref.cc_weight) == \
        ("fine_avg", "advantage", "broadcast", 0.15)
    assert cfgs["binary-and"].reward.if_strategy == "binary_and" and cfgs["reward-fusion"].reward.fusion == "reward"
    assert cfgs["per-turn-adv"].reward.advantage_mode == "per_turn"
    assert cfgs["grpo"].objective.name == "grpo" and cfgs["grpo"].sampler.method == "sde"
    assert [cfgs[f"lambda-{w}"].reward.cc_weight for w in ("0", "0.5", "1", "3")] == [0.0, 0.5, 1.0, 3.0]
    assert cfgs["lambda-3"].trainer.seed == 2 and cfgs["lambda-3"].evaluation.modes == ["multi_turn"]


def test_cli_selects_variants_and_seeds(tmp_path):
    args = sweep.parse_args(["--variants", "grpo,lambda-0", "--seeds", "3", "trainer.num_steps=2"])
    assert [v.name for v in args.variants] == ["grpo", "lambda-0"] and args.seeds == [3]
    assert args.overrides == ["trainer.num_steps=2"] and args.out == "results/ablations"
    assert len(sweep.parse_args([]).variants) == len(report.VARIANTS)
    with pytest.raises(SystemExit):
        sweep.parse_args(["--variants", "binary-or"])
    sweep.check_settings(tmp_path, "a.yaml", ["x=1"])
    sweep.check_settings(tmp_path, "a.yaml", ["x=1"])  # same settings: fine
    with pytest.raises(SystemExit, match="other settings"):
        sweep.check_settings(tmp_path, "a.yaml", ["x=2"])


def test_the_settings_name_the_config_relative_to_the_clone(tmp_path, monkeypatch):
    """Committed results (sweep.json) must not refuse the same command run from another clone."""
    out = tmp_path / "results"
    for clone in ("a", "b"):
        (tmp_path / clone / "jobs").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / clone)
        sweep.check_settings(out, str(tmp_path / clone / "jobs" / "c.yaml"), ["x=1"])
    assert json.loads((out / "sweep.json").read_text()) == {"config": "jobs/c.yaml", "overrides": ["x=1"]}


def test_prune_keeps_only_the_final_lora(tmp_path):
    for step in ("step_000010", "step_000020"):
        (tmp_path / "checkpoints" / step / "lora").mkdir(parents=True)
        (tmp_path / "checkpoints" / step / "learner").mkdir()
        (tmp_path / "checkpoints" / step / "driver.json").write_text("{}")
    sweep._prune_checkpoints(tmp_path)
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == ["checkpoints", "checkpoints/step_000020", "checkpoints/step_000020/lora"]



def test_tiny_sweep_writes_the_results_and_a_second_run_skips_everything(tmp_path, local_ray, capsys, monkeypatch):
    out = tmp_path / "abl"
    argv = ["--variants", "lambda-0", "--seeds", "0", "--out", str(out), "trainer.num_steps=1",
            "rollout.groups_per_step=1", "rollout.group_size=4", "rollout.chains_per_request=1",
            "evaluation.synthetic_chains=3", "evaluation.num_grids=1", "evaluation.chains_per_request=3"]
    sweep.main(argv)
    for name in ("ablations.md", "ablations.json", "reward_curves.png", "per_turn_bars.png",
                 "runs/base/eval/report.md", "runs/lambda-0/seed0/eval/scores.parquet",
                 "runs/lambda-0/seed0/eval/report.md", "runs/lambda-0/seed0/timing.json"):
        assert (out / name).is_file(), name
    train = report.train_dir(out / "runs" / "lambda-0" / "seed0", "lambda-0", 0)
    assert (train / "checkpoints" / "step_000001" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    assert not (train / "checkpoints" / "step_000001" / "learner").exists()  # pruned
    data = json.loads((out / "ablations.json").read_text())
    assert [(r["variant"], r["seed"]) for r in data["runs"]] == [("lambda-0", 0)]
    assert data["base"]["num_chains"] == 3 and len(data["runs"][0]["if_curve"]) == 1
    assert {r["cc_weight"] for r in data["runs"]} == {0.0}
    md = (out / "ablations.md").read_text()
    assert "--variants lambda-0 --seeds 0" in md and "trainer.num_steps=1" in md
    assert "| base | - |" in md and "| lambda-0 | 1 (0) |" in md
    printed = capsys.readouterr().out
    assert "[1/1] lambda-0 seed 0: done in" in printed and "ETA" in printed

    def fail(*_args, **_kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(sweep, "run_variant", fail)
    monkeypatch.setattr("jobs.evaluate.main", fail)
    sweep.main(argv)
    printed = capsys.readouterr().out
    assert printed.count("already evaluated, skipped") == 1 and "done:" in printed
    assert (out / "ablations.md").read_text() == md

    # A fresh clone of the committed results has ablations.json but no runs/ (git-ignored): the
    # recorded run and base are neither redone nor lost.
    shutil.rmtree(out / "runs")
    sweep.main(argv)
    printed = capsys.readouterr().out
    assert printed.count("recorded in") == 1 and "[base]" not in printed
    assert (out / "ablations.md").read_text() == md
    assert json.loads((out / "ablations.json").read_text())["runs"] == data["runs"]


def test_recorded_results_are_kept_and_a_different_base_stops_the_sweep(tmp_path):
    base = RunResult("base", None, [30.0, 15.0, 5.0], [40.0, 20.0, 6.0], [88.0, 87.0, 86.0], [40.0, 30.0, 20.0],
                     20.0, 10)
    rec = run("lambda-1", 2, [40.0, 30.0, 21.0])
    stale = run("no-longer-a-variant", 0, [1.0, 1.0, 1.0])
    (tmp_path / "ablations.json").write_text(json.dumps(
        {"base": report.asdict(base), "runs": [report.asdict(rec), report.asdict(stale)]}))
    got_base, got_runs = report.load_results(tmp_path)
    assert got_base == base and got_runs == [rec]
    report.check_same_base(base, base)
    report.check_same_base(None, base)
    moved = RunResult(**{**report.asdict(base), "overall": [30.0, 15.0, 5.5]})
    with pytest.raises(SystemExit, match="evaluates differently"):
        report.check_same_base(base, moved)
    (tmp_path / "ablations.json").write_text("{not json")
    with pytest.raises(SystemExit, match="not a sweep's results file"):
        report.load_results(tmp_path)


def test_plots_one_row_per_group_with_runs_and_bars_per_variant(tmp_path):
    from PIL import Image

    runs = {n: [run(n, s, [40.0, 30.0, 20.0 + s]) for s in (0, 1)] for n in ("mt-editflow", "grpo", "lambda-1")}
    for rs in runs.values():
        for r in rs:
            r.if_curve, r.cc_curve = [2.0, 2.5, None, 3.0], [0.9, 0.92, None, 0.95]
    base = RunResult("base", None, [30.0, 15.0, 5.0], [40.0, 20.0, 6.0], [88.0, 87.0, 86.0], [40.0, 30.0, 20.0],
                     20.0, 10)
    written = report.write_plots(runs, base, tmp_path)
    assert [p.name for p in written] == ["reward_curves.png", "per_turn_bars.png"]
    curves = Image.open(tmp_path / "reward_curves.png")
    assert curves.width == 2 * 420 and curves.height == len(report.GROUPS) * (240 + 26)  # every group has mt-editflow
    assert Image.open(tmp_path / "per_turn_bars.png").height > 100


def test_run_variant_trains_fresh_resumes_restarts_or_reuses_and_redoes_a_half_written_eval(tmp_path, monkeypatch):
    """With jobs.train / jobs.evaluate faked: what a (variant, seed) slot found on disk leads to."""
    calls, fresh = [], []

    def fake_train(argv):
        calls.append(argv)
        if "--resume" in argv:
            path = sweep.Path(argv[argv.index("--resume") + 1])
        else:
            fresh.append(argv)
            path = sweep.Path(argv[argv.index("--output-dir") + 1]) / f"grpo-seed1-2026010{len(fresh)}-000000"
        for step in ("step_000001", "step_000002"):
            (path / "checkpoints" / step / "lora").mkdir(parents=True, exist_ok=True)
            (path / "checkpoints" / step / "learner").mkdir(exist_ok=True)
        return path

    def fake_evaluate(argv):
        calls.append(argv)
        out = sweep.Path(argv[argv.index("--output") + 1])
        out.mkdir(parents=True)  # evaluate refuses a non-empty folder
        (out / "report.md").write_text("r")
        (out / "scores.parquet").write_text("s")
        return out

    monkeypatch.setattr("jobs.train.main", fake_train)
    monkeypatch.setattr("jobs.evaluate.main", fake_evaluate)
    grpo, slot = report.BY_NAME["grpo"], report.slot_dir(tmp_path, "grpo", 1)

    def go():
        calls.clear()
        timing = sweep.run_variant(tmp_path, grpo, 1, str(sweep.DEFAULT_CONFIG), ["trainer.num_steps=2"],
                                   tmp_path / "base", None)
        assert set(timing) == {"train_s", "eval_s"} and report.evaluated(slot / "eval")
        return len(calls)

    assert go() == 2  # nothing on disk: a fresh run in the slot, then its evaluation against the base
    # The sweep's defaults, the common overrides, the variant's, then the seed: later ones win.
    assert calls[0][calls[0].index("--output-dir") + 1] == str(slot)
    assert calls[0][4:] == ["evaluation.modes=[multi_turn]", "trainer.num_steps=2", "objective.name=grpo",
                            "sampler.method=sde", "objective.grpo.timestep_fraction=0.125", "trainer.seed=1",
                            "run_name=grpo-seed1"]
    assert calls[1][calls[1].index("--compare") + 1] == str(tmp_path / "base")
    run = report.train_dir(slot, "grpo", 1)
    assert calls[1][calls[1].index("--lora") + 1] == str(run / "checkpoints" / "step_000002" / "lora")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_000002"]  # pruned

    (slot / "eval" / "scores.parquet").unlink()  # a half-written evaluation; training finished
    assert go() == 1 and "--lora" in calls[0]  # evaluation only

    shutil.rmtree(run / "checkpoints" / "step_000002")
    (run / "checkpoints" / "step_000001" / "lora").mkdir(parents=True)
    shutil.rmtree(slot / "eval")
    go()  # cut short after a checkpoint: resumed in its folder
    assert calls[0][calls[0].index("--resume") + 1] == str(run)

    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints" / "step_000001.tmp").mkdir(parents=True)
    shutil.rmtree(slot / "eval")
    go()  # cut short before any checkpoint: that folder goes, a fresh run starts
    assert "--output-dir" in calls[0] and not run.exists() and report.train_dir(slot, "grpo", 1) != run
