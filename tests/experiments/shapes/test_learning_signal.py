"""The learning-signal diagnostic on a tiny shapes setting (2 chains x 2 rollouts, 2 denoising steps,
16 training chains, filter off so both groups train; ~15 s each on 2 cores): the CLI as a user runs
it, and its gradient and fixed-seed rollouts in-process."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from experiments.shapes.learning_signal import DEFAULT_CONFIG, batch_chains, cosine, halves, lora_gradient, slope

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.synthetic_train_chains=16", "rollout.groups_per_step=2", "rollout.group_size=2",
        "rollout.chains_per_request=2", "sampler.num_steps=2", "filter.enabled=false", "learner.micro_batch_size=4",
        "learner.optimizer_steps_per_step=1", "cluster.cpu_threads=1"]


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@pytest.mark.slow
def test_cli_prints_cosines_iteration_records_and_verdict(tmp_path):
    out = tmp_path / "signal.json"
    run = subprocess.run([sys.executable, "-m", "experiments.shapes.learning_signal", "--iters", "2", "--json", str(out), *TINY],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    cosines, records, verdict = lines[0], lines[1:-1], lines[-1]

    assert cosines["test"] == "gradient_cosine" and cosines["chains_a"] == cosines["chains_b"] == 1
    for c in [*cosines["same_data_other_noise"], cosines["other_chains"]]:
        assert -1.0 <= c <= 1.0
    assert cosines["norm_a"] > 0 and cosines["norm_b"] > 0

    assert [r["it"] for r in records] == [0, 1, 2]
    assert len(records[0]["chains"]) == 2 and all(r["chains"] == records[0]["chains"] for r in records)
    for r in records:
        assert 0.0 <= r["r_if"] <= 1.0 and _finite(r["r_cc"], r["s"], *r["cc_turn"])
        assert len(r["if_turn"]) == 3 and all(1.0 <= x <= 5.0 for x in r["if_turn"])
        assert r["kept"] == 2
    for r in records[:-1]:  # the updates
        assert _finite(r["loss"], r["grad_norm"]) and r["grad_norm"] > 0
    assert "loss" not in records[-1]  # the last rollout only measures

    rewards = [r["r_if"] for r in records]
    assert verdict["test"] == "direction"
    assert verdict["delta"] == pytest.approx(rewards[-1] - rewards[0], abs=1e-4)
    assert verdict["slope_per_iter"] == pytest.approx((rewards[2] - rewards[0]) / 2, abs=1e-4)
    assert verdict["verdict"].startswith("rose") == (verdict["delta"] > 0 and verdict["slope_per_iter"] > 0)

    saved = json.loads(out.read_text())
    assert saved["direction"] == records and saved["cosines"] == cosines and saved["verdict"] == verdict
    assert saved["overrides"] == TINY


@pytest.fixture(scope="module")
def loop():
    from benchmarks.reference_loop import ReferenceLoop
    from edit_rl.config import load_config

    torch.set_num_threads(1)
    return ReferenceLoop(cfg=load_config(ROOT / DEFAULT_CONFIG, TINY))


def test_gradient_is_deterministic_per_noise_seed_and_leaves_the_weights(loop):
    chains = loop.sampler.next(2)
    batch = loop.rollout_batch(0, chains)
    half_a, half_b = halves(batch)
    assert {s.chain_id for s in half_a}.isdisjoint({s.chain_id for s in half_b})
    assert len(half_a) + len(half_b) == len(batch.samples) == 2 * 2 * 3  # chains x rollouts x turns

    before = loop.learner.lora_state()
    g1, again, g2 = (lora_gradient(loop, half_a, seed) for seed in (1, 1, 2))
    gb = lora_gradient(loop, half_b, 1)
    assert g1.norm() > 0 and g2.norm() > 0 and gb.norm() > 0
    assert cosine(g1, again) == pytest.approx(1.0, abs=1e-9)
    assert cosine(g1, g2) < 0.9999  # other (t, eps) draws: another gradient
    assert all(-1.0 <= cosine(g1, g) <= 1.0 for g in (g2, gb))
    after = loop.learner.lora_state()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in loop.learner.backend.params)


def test_seed_step_repeats_the_rollout_of_that_step(loop):
    chains = loop.sampler.next(2)
    first = loop.rollout_batch(10, chains)
    repeat = loop.rollout_batch(11, chains, seed_step=10)
    other = loop.rollout_batch(12, chains)
    assert batch_chains(first) == batch_chains(repeat) == sorted(c.chain_id for c in chains)
    assert all(torch.equal(a.payload.x0, b.payload.x0) for a, b in zip(first.samples, repeat.samples, strict=True))
    assert repeat.stats.if_turn_mean == first.stats.if_turn_mean
    assert not all(torch.equal(a.payload.x0, b.payload.x0) for a, b in zip(first.samples, other.samples, strict=True))


def test_slope_is_the_least_squares_slope():
    assert slope([0.1, 0.2, 0.3]) == pytest.approx(0.1)
    assert slope([1.0, 0.0, 1.0]) == pytest.approx(0.0)
    assert slope([0.3, 0.1]) == pytest.approx(-0.2)
    with pytest.raises(ValueError):
        slope([0.5])


def test_reference_loop_takes_a_world_or_a_config():
    from benchmarks.reference_loop import ReferenceLoop

    with pytest.raises(ValueError, match="world or a config"):
        ReferenceLoop()
    with pytest.raises(ValueError, match="world or a config"):
        ReferenceLoop("synthetic", cfg=object())
