"""The evaluation job end to end on a local Ray cluster (synthetic world, tiny random editor): the
base model, then a training checkpoint's LoRA compared with it; the folder it leaves."""
import json

import pyarrow.parquet as pq
import pytest
import ray
import torch
from PIL import Image

from edit_rl.config import load_config, save_config
from edit_rl.config.schema import LoRAConfig
from edit_rl.editors import lora
from edit_rl.editors.load import load_editor
from edit_rl.editors.lora_targets import lora_config_for
from edit_rl.evaluation import read_scores
from jobs import evaluate
from actors.evaluator import Evaluator

SMALL = ["evaluation.synthetic_chains=3", "evaluation.num_grids=1", "evaluation.chains_per_request=4"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def fake_training_run(root, rank: int = 2, alpha: int = 4):
    """A run folder as jobs.train leaves it: config.yaml and checkpoints/step_N/lora (random LoRA)."""
    cfg = load_config("jobs/configs/cpu_tiny.yaml")
    save_config(cfg, root / "config.yaml")
    editor = load_editor(cfg.editor)
    lora.add_lora(editor.transformer, lora_config_for(editor, LoRAConfig(rank=rank, alpha=alpha)))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in lora.adapter_parameters(editor.transformer, "default"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    folder = root / "checkpoints" / "step_000002" / "lora"
    lora.save_lora_weights(editor, folder)
    return folder


def test_base_then_lora_with_comparison(tmp_path):
    base = evaluate.main(["--output", str(tmp_path / "base"), *SMALL])
    for name in ("report.md", "scores.parquet", "config.yaml", "plots/per_turn_multi_turn.png",
                 "plots/per_type_single_turn.png", "grids/synthetic-1.png"):
        assert (base / name).is_file(), name
    records, meta = read_scores(base)
    assert meta.label == "tiny/flux-kontext" and meta.success_threshold == 5.0 and meta.lora is None
    assert len(records) == 3 * 3 * 2  # chains x turns x modes
    assert {r.mode for r in records} == {"multi_turn", "single_turn"}
    assert {r.chain_id for r in records} == {"synthetic-1", "synthetic-3", "synthetic-5"}
    assert all(r.judge_score in (1.0, 2.0, 3.0, 4.0, 5.0) and r.success == (r.judge_score >= 5.0) for r in records)
    assert all(r.cc is None or -1.0 <= r.cc <= 1.0 for r in records)
    saved = load_config(base / "config.yaml")
    assert saved.judge.mode == "single_turn" and saved.consistency.pairing == "reference"
    with Image.open(base / "grids" / "synthetic-1.png") as grid:
        assert grid.height == 2 * (256 + 4 * 12 + 8)  # two rows: multi-turn, single-turn
    assert "| tiny/flux-kontext |" in (base / "report.md").read_text()

    lora_dir = fake_training_run(tmp_path / "run")
    tuned = evaluate.main(["--output", str(tmp_path / "lora"), "--lora", str(lora_dir), "--compare", str(base),
                           *SMALL, "rollout.num_workers=2"])  # overrides after --compare still count as overrides
    tuned_records, tuned_meta = read_scores(tuned)
    assert tuned_meta.label == "run/step_000002" and tuned_meta.lora == str(lora_dir)
    assert load_config(tuned / "config.yaml").lora.rank == 2  # the checkpoint's rank, not the preset's 4
    assert len(tuned_records) == len(records)
    # same chains, same noise; the LoRA changes the edits (hence the consistency terms)
    key = lambda r: (r.mode, r.chain_id, r.turn)  # noqa: E731
    assert [key(r) for r in tuned_records] == [key(r) for r in records]
    assert [r.cc for r in tuned_records] != [r.cc for r in records]
    report = (tuned / "report.md").read_text()
    assert "| tiny/flux-kontext |" in report and "| + run/step_000002 |" in report
    assert report.count("| Δ vs tiny/flux-kontext |") == 4  # Tables 1 and 7 layouts, both modes
    assert report.count("### Differences from tiny/flux-kontext, with uncertainty") == 2  # paired bootstrap
    assert report.count("\n| run/step_000002 | ") == 2  # the rows of the differences tables
    assert pq.read_table(tuned / "scores.parquet").num_rows == 18
    assert json.loads(pq.read_schema(tuned / "scores.parquet").metadata[b"edit_rl.evaluation"])["seed"] == 1234

    # One evaluator for both (experiments.shapes.proof): workers built with the LoRA's rank-2 adapters sample
    # the base model until the LoRA is loaded; the scores equal those of the two separate runs.
    cfg, _ = evaluate.resolved_config(str(evaluate.DEFAULT_CONFIG), SMALL, str(lora_dir))
    shared = Evaluator(cfg)
    try:
        with pytest.raises(ValueError, match="another config"):
            evaluate.main(["--output", str(tmp_path / "x"), *SMALL, "evaluation.seed=1"], evaluator=shared)
        again = evaluate.main(["--output", str(tmp_path / "base2"), *SMALL], evaluator=shared)
        tuned2 = evaluate.main(["--output", str(tmp_path / "lora2"), "--lora", str(lora_dir), *SMALL],
                               evaluator=shared)
        with pytest.raises(ValueError, match="hold a LoRA"):
            evaluate.main(["--output", str(tmp_path / "base3"), *SMALL], evaluator=shared)
    finally:
        shared.close()
    # Judge scores exactly; CC to float rounding: a fresh-clone CI run saw one CC 1.5e-7 off (Serve
    # batches requests as they arrive, and a batch's size can change the last bits of a matmul). Base
    # and LoRA CCs differ by ~1e-2, so sampling the wrong weights would still fail.
    scores = lambda rs: [(key(r), r.judge_score) for r in rs]  # noqa: E731
    ccs = lambda rs: [r.cc for r in rs]  # noqa: E731
    for shared_run, separate in ((again, records), (tuned2, tuned_records)):
        assert scores(read_scores(shared_run)[0]) == scores(separate)
        assert ccs(read_scores(shared_run)[0]) == pytest.approx(ccs(separate), abs=1e-5)
    assert max(abs(a - b) for a, b in zip(ccs(records), ccs(tuned_records)) if a is not None) > 1e-3
    assert not (tmp_path / "x").exists() and not (tmp_path / "base3").exists()  # refused before any folder


def test_lora_from_a_run_of_another_editor_is_refused(tmp_path):
    cfg = load_config("jobs/configs/cpu_tiny.yaml", ["editor.name_or_path=tiny/other"])
    save_config(cfg, tmp_path / "config.yaml")
    folder = tmp_path / "checkpoints" / "step_000001" / "lora"
    folder.mkdir(parents=True)
    with pytest.raises(SystemExit, match="trained on flux_kontext 'tiny/other'"):
        evaluate.check_lora_run(load_config("jobs/configs/eval_synthetic.yaml"), folder)
