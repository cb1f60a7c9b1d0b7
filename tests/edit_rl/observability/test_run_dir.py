"""The run folder: timestamped or explicit, config.yaml that loads back, samples/ and checkpoints/, resume."""
import re

import pytest

from edit_rl.config import load_config
from edit_rl.observability import create_run_dir, latest_run_dir


def test_fresh_run_gets_a_timestamped_folder_with_config_and_subfolders(tmp_path):
    cfg = load_config(None, ["run_name=demo", "trainer.num_steps=7"])
    run = create_run_dir(cfg, output_dir=tmp_path)
    assert run.path.parent == tmp_path and not run.resumed
    assert re.fullmatch(r"demo-\d{8}-\d{6}", run.path.name)
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "config.yaml", "samples"]
    assert load_config(run.config_path) == cfg  # the saved config is the resolved one
    assert run.sample_path(42) == run.path / "samples" / "step_000042.png"


def test_two_runs_in_the_same_second_get_distinct_folders(tmp_path):
    cfg = load_config(None, ["run_name=demo"])
    paths = {create_run_dir(cfg, output_dir=tmp_path).path for _ in range(3)}
    assert len(paths) == 3


def test_output_dir_defaults_to_the_config(tmp_path):
    cfg = load_config(None, [f"output_dir={tmp_path / 'runs'}", "run_name=x"])
    assert create_run_dir(cfg).path.parent == tmp_path / "runs"


def test_explicit_folder_is_used_and_a_non_empty_one_needs_resume(tmp_path):
    cfg = load_config(None, [])
    run = create_run_dir(cfg, run_dir=tmp_path / "mine")
    assert run.path == tmp_path / "mine" and run.config_path.is_file()
    with pytest.raises(FileExistsError, match="--resume"):
        create_run_dir(cfg, run_dir=tmp_path / "mine")


def test_resume_reuses_the_folder_and_saves_the_new_config(tmp_path):
    first = create_run_dir(load_config(None, ["run_name=demo", "trainer.num_steps=10"]), output_dir=tmp_path)
    (first.checkpoints_dir / "step_5").mkdir()
    cfg2 = load_config(None, ["run_name=demo", "trainer.num_steps=20"])
    again = create_run_dir(cfg2, output_dir=tmp_path, resume=True)  # the newest demo-* folder
    assert again.path == first.path and again.resumed
    assert (again.checkpoints_dir / "step_5").is_dir()
    assert load_config(again.config_path).trainer.num_steps == 20
    explicit = create_run_dir(cfg2, run_dir=first.path, resume=True)
    assert explicit.path == first.path


def test_resume_without_a_folder_is_an_error(tmp_path):
    cfg = load_config(None, ["run_name=demo"])
    with pytest.raises(FileNotFoundError, match="demo-"):
        create_run_dir(cfg, output_dir=tmp_path, resume=True)
    with pytest.raises(FileNotFoundError):
        create_run_dir(cfg, run_dir=tmp_path / "missing", resume=True)


def test_latest_run_dir_picks_the_newest_timestamp_of_that_run_name(tmp_path):
    for name in ("demo-20260101-120000", "demo-20260301-090000", "demo-20260301-090000-2",
                 "demo-x-20270101-000000", "other-20990101-000000", "demo-notes"):
        (tmp_path / name).mkdir()
    assert latest_run_dir(tmp_path, "demo").name == "demo-20260301-090000-2"
    assert latest_run_dir(tmp_path, "demo-x").name == "demo-x-20270101-000000"
    assert latest_run_dir(tmp_path / "none", "demo") is None
