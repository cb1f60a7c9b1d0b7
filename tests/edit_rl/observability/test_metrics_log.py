"""metrics.jsonl: one fsync'd line per step, truncated on resume; the same scalars in TensorBoard."""
import math
import os

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from edit_rl.observability import MetricsLogger, flatten_metrics, read_metrics
from edit_rl.observability import metrics_log


def tb_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_flatten_nests_with_slashes_and_numbers_list_items_from_one():
    flat = flatten_metrics({"reward": {"if_turn": [4.0, 3.5, 3.0], "cc_turn": (0.9, 0.8)}, "loss": 0.25,
                            "objective": "nft", "none": None, "ok": True, "n": np.int64(3),
                            "t": torch.tensor([1.0, 2.0]), "nested": [[1, 2], {"a": 5}]})
    assert flat == {"reward/if_turn1": 4.0, "reward/if_turn2": 3.5, "reward/if_turn3": 3.0,
                    "reward/cc_turn1": 0.9, "reward/cc_turn2": 0.8, "loss": 0.25, "ok": 1.0, "n": 3.0,
                    "t1": 1.0, "t2": 2.0, "nested11": 1.0, "nested12": 2.0, "nested2/a": 5.0}


def test_each_step_is_one_json_line_and_tensorboard_has_the_same_scalars(tmp_path):
    with MetricsLogger(tmp_path) as log:
        for step in range(3):
            scalars = log.log(step, {"objective": "nft", "loss": 0.5 - 0.1 * step,
                                     "reward": {"if_turn": [4.0 + step, 3.0]}, "arr": np.float32(0.5)})
    assert scalars == {"loss": 0.3, "reward/if_turn1": 6.0, "reward/if_turn2": 3.0, "arr": 0.5}
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows == [{"step": s, "objective": "nft", "loss": 0.5 - 0.1 * s,
                     "reward": {"if_turn": [4.0 + s, 3.0]}, "arr": 0.5} for s in range(3)]
    assert read_metrics(tmp_path) == rows  # a run folder works too
    tb = tb_scalars(tmp_path)
    assert set(tb) == {"loss", "reward/if_turn1", "reward/if_turn2", "arr"}
    assert [s for s, _ in tb["reward/if_turn1"]] == [0, 1, 2]
    assert [v for _, v in tb["reward/if_turn1"]] == [4.0, 5.0, 6.0]
    assert np.allclose([v for _, v in tb["loss"]], [0.5, 0.4, 0.3])


def test_non_finite_values_are_logged_not_crashing(tmp_path):
    with MetricsLogger(tmp_path) as log:
        log.log(0, {"loss": float("nan"), "grad_norm": float("inf"), "kl": -float("inf")})
    (row,) = read_metrics(tmp_path)
    assert math.isnan(row["loss"]) and row["grad_norm"] == math.inf and row["kl"] == -math.inf
    assert "NaN" in (tmp_path / "metrics.jsonl").read_text()
    tb = tb_scalars(tmp_path)
    assert math.isnan(tb["loss"][0][1]) and tb["grad_norm"][0][1] == math.inf


def test_every_step_is_flushed_and_fsynced_before_log_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(metrics_log.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(4):
        log.log(step, {"loss": float(step)})
        # Another reader sees the line already, without close (what survives a crash).
        assert [r["step"] for r in read_metrics(tmp_path)] == list(range(step + 1))
    assert len(synced) == 4
    log.close()


def test_resume_drops_later_steps_and_a_torn_last_line(tmp_path):
    with MetricsLogger(tmp_path) as log:
        for step in range(6):
            log.log(step, {"loss": float(step)})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "loss"')  # killed mid-write
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(6))
    # Resume from the checkpoint of step 3: steps 4.. are redone and must not appear twice.
    with MetricsLogger(tmp_path, resume_step=3) as log:
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3]
        for step in range(4, 8):
            log.log(step, {"loss": 10.0 + step})
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(8))
    assert [r["loss"] for r in rows] == [0.0, 1.0, 2.0, 3.0, 14.0, 15.0, 16.0, 17.0]
    assert not (tmp_path / "metrics.jsonl.tmp").exists()
    # TensorBoard hides the first run's steps 4, 5 (purge_step): one value per step.
    assert tb_scalars(tmp_path)["loss"] == [(s, v) for s, v in enumerate(r["loss"] for r in rows)]


def test_resume_into_a_folder_without_metrics_starts_the_file(tmp_path):
    with MetricsLogger(tmp_path, resume_step=9, tensorboard=False) as log:
        log.log(10, {"loss": 1.0})
    assert read_metrics(tmp_path) == [{"step": 10, "loss": 1.0}]
