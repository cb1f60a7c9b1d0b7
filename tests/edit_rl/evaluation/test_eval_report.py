"""Scores Parquet round trip, per-turn / per-type summaries on a hand-computed example, the
markdown tables in the papers' layouts with delta rows, PIL plots, and comparisons of folders."""
import dataclasses

import pytest
from PIL import Image

from edit_rl.data import RowError
from edit_rl.evaluation import (
    EvalMeta,
    TurnRecord,
    read_scores,
    render_report,
    summarize,
    write_comparison,
    write_plots,
    write_scores,
)
from edit_rl.evaluation.bootstrap import PairedDifferences
from edit_rl.evaluation.compare import load_runs

THRESHOLD = 4.0
# chain -> per turn (task type, judge score, (object, background, counted))
CHAINS = {
    "a": [("color_alter", 5.0, (0.9, 0.8, True)), ("subject_remove", 4.0, (0.7, None, True)),
          ("background_change", 2.0, (0.1, None, False))],
    "b": [("color_alter", 3.0, (None, 0.6, True)), ("subject_add", 5.0, (0.5, 0.4, True)),
          ("color_alter", 5.0, (0.3, 0.2, True))],
}


def records(mode: str = "multi_turn", bump: float = 0.0) -> list[TurnRecord]:
    out = []
    for chain_id, turns in CHAINS.items():
        for t, (task, score, (obj, bg, counted)) in enumerate(turns, start=1):
            score = min(5.0, score + bump)
            present = [v for v in (obj, bg) if v is not None]
            out.append(TurnRecord(mode, chain_id, t, task, f"edit {t}", score, False, score >= THRESHOLD,
                                  sum(present) / len(present), obj, bg, counted))
    return out


def meta(label: str = "base") -> EvalMeta:
    return EvalMeta(label=label, success_threshold=THRESHOLD, editor="tiny/flux-kontext", lora=None,
                    judge="synthetic rubric judge", consistency="synthetic", source="test", num_chains=2,
                    skipped_rows=0, seed=1234, sampler="euler, 4 steps", modes=("multi_turn", "single_turn"))


def test_scores_round_trip_through_parquet_with_metadata(tmp_path):
    rows = records() + records("single_turn")
    write_scores(rows, meta(), tmp_path / "scores.parquet")
    back, back_meta = read_scores(tmp_path)  # the folder works as well as the file
    assert back == rows and back_meta == meta()
    with pytest.raises(ValueError, match="mode"):
        TurnRecord("pairwise", "a", 1, "x", "y", 1.0, False, False, None, None, None, True)


def test_summary_numbers_by_hand():
    summary = summarize(records() + records("single_turn"), meta())
    multi = summary.modes["multi_turn"]
    # successes a: T T F, b: F T T
    assert [t.edival_if for t in multi.turns] == [50.0, 50.0, 0.0]  # a chain counts only while all succeeded
    assert [t.marginal for t in multi.turns] == [50.0, 100.0, 50.0]
    assert multi.drop == 0.0 and multi.num_chains == 2
    # CC: T1 objects .9, backgrounds (.8 + .6) / 2; T2 (.7 + .5) / 2 and .4; T3 a's pair not counted
    assert [t.cc for t in multi.turns] == pytest.approx([80.0, 50.0, 25.0])
    assert [t.cc_pairs for t in multi.turns] == [2, 2, 1]
    assert [t.overall for t in multi.turns] == pytest.approx([(50 * 80) ** 0.5, 50.0, 0.0])
    assert [t.mean_score for t in multi.turns] == [4.0, 4.5, 3.5]
    colour = next(t for t in multi.types if t.task_type == "color_alter")
    assert colour.num_turns == 3 and colour.success == pytest.approx(200 / 3)
    assert colour.success_per_turn == (50.0, None, 100.0)
    assert colour.cc == pytest.approx(100 * ((0.9 + 0.3) / 2 + (0.8 + 0.6 + 0.2) / 3) / 2)
    assert [t.task_type for t in multi.types] == ["background_change", "color_alter", "subject_add",
                                                  "subject_remove"]
    single = summary.modes["single_turn"]
    assert [t.edival_if for t in single.turns] == [t.marginal for t in single.turns] == [50.0, 100.0, 50.0]


def test_report_tables_follow_the_papers_layout_with_delta_rows(tmp_path):
    base = summarize(records(), meta("base"))
    tuned = summarize(records(bump=1.0), meta("tuned"))  # a succeeds everywhere, b too
    plots = write_plots([base, tuned], tmp_path / "plots")
    assert sorted(plots) == ["per_turn_multi_turn", "per_type_multi_turn"]
    with Image.open(plots["per_turn_multi_turn"]) as image:
        assert image.width == 4 * 300 and image.mode == "RGB"
    text = render_report(tuned, [base], plots=plots, grids=[tmp_path / "grids" / "a.png"],
                         errors=[RowError(7, "image_index 9, turn 1: bad")], root=tmp_path)
    assert "| Model | IF T1 | IF T2 | IF T3 | CC T1 | CC T2 | CC T3 | O T1 | O T2 | O T3 |" in text
    assert "| base | 50.00 | 50.00 | 0.00 | 80.00 | 50.00 | 25.00 | 63.25 | 50.00 | 0.00 |" in text
    assert "| + tuned | 100.00 | 100.00 | 50.00 | 80.00 | 50.00 | 25.00 | 89.44 | 70.71 | 35.36 |" in text
    assert "| Δ vs base | +50.00 | +50.00 | +50.00 | +0.00 | +0.00 | +0.00 | +26.19 | +20.71 | +35.36 |" in text
    assert "| Model | T1 | T2 | T3 | Drop T1→T3 |" in text
    assert "| + tuned | 100.00 | 100.00 | 50.00 | 50.00 |" in text
    assert "| Δ vs base | +50.00 | +0.00 | +0.00 | +50.00 |" in text
    assert "| color_alter | 66.67 | 100.00 | +33.33 |" in text
    assert "![per_turn_multi_turn](plots/per_turn_multi_turn.png)" in text and "(grids/a.png)" in text
    assert "- row 7: image_index 9, turn 1: bad" in text
    assert "Single-turn" not in text  # no single-turn records, no section
    assert "Warning" not in text
    assert "with uncertainty" not in text  # no differences given, no section
    unpaired = PairedDifferences("tuned", "multi_turn", reason="multi_turn: the evaluations scored different chains")
    assert ("| tuned | – | – | not paired: multi_turn: the evaluations scored different chains |"
            in render_report(tuned, [base], differences=[unpaired]))
    other = summarize(records(), dataclasses.replace(meta("other judge"), judge="tiny/qwen3-vl", seed=1))
    assert "**Warning:** the runs differ in judge, seed:" in render_report(other, [base])


def test_comparison_of_evaluation_folders_recomputes_from_parquet(tmp_path):
    write_scores(records() + records("single_turn"), meta("base"), tmp_path / "base" / "scores.parquet")
    write_scores(records(bump=1.0) + records("single_turn", 1.0), meta("base"), tmp_path / "rl" / "scores.parquet")
    runs = load_runs([tmp_path / "base", tmp_path / "rl"])
    assert [r.meta.label for r in runs] == ["base", "base (rl)"]  # the same label twice: folder appended
    path = write_comparison([tmp_path / "base", tmp_path / "rl"], tmp_path / "cmp")
    text = path.read_text()
    assert text.startswith("# Comparison: base vs base (rl)")
    assert text.count("| Δ vs base |") == 4  # Table 1 and Table 7 layouts, both modes
    # tuned minus base (paired bootstrap), multi-turn: turn-3 O 0 -> 35.36, IF 0 -> 50, drop 0 -> 50;
    # single-turn: turn 3 succeeds on chain b only in both (difference 0 in every resample), drop 0 -> 50
    assert text.count("### Differences from base, with uncertainty") == 2
    assert text.count("| Run | EdiVal-O T3 | EdiVal-IF T3 | Drop T1→T3 |") == 2
    assert "| base (rl) | +35.4 ± " in text and text.count(" | +50.0 ± ") == 3
    assert "| base (rl) | +0.0 ± 0.0 (+0.0 to +0.0) | +0.0 ± 0.0 (+0.0 to +0.0) | +50.0 ± " in text
    assert (tmp_path / "cmp" / "plots" / "per_type_single_turn.png").is_file()
    with pytest.raises(ValueError, match="at least two"):
        write_comparison([tmp_path / "base"], tmp_path / "one")
    changed = dataclasses.replace(records()[0], success=False)
    assert summarize([changed] + records()[1:], meta()).modes["multi_turn"].turns[0].edival_if == 0.0
