"""The Ray training job end to end on a real local Ray cluster: both objectives, both modes,
faults (the rollout worker's and a judge replica's processes killed mid-step, an unscorable
trajectory), and an exact resume."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import ray
from safetensors.torch import load_file

from edit_rl.config import load_config
from edit_rl.observability import create_run_dir, read_metrics
from jobs import train
from actors.trainer import Trainer

CPU_TINY = "jobs/configs/cpu_tiny.yaml"
# Deterministic scorers (the shapes world's checker and colour-segmentation CC) for the runs whose
# numbers are compared; no filter, so every trajectory trains and the sample counts are exact.
SYNTHETIC = ["judge.backend=synthetic", "consistency.detector=synthetic", "filter.enabled=false"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False)
    yield
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def run_job(tmp_path, *overrides) -> tuple:
    path = train.main(["--output-dir", str(tmp_path), *overrides])
    return path, read_metrics(path)


def test_cpu_default_nft_sync_leaves_a_complete_run_folder(tmp_path):
    path, rows = run_job(tmp_path, "trainer.num_steps=2")
    assert [r["step"] for r in rows] == [0, 1]
    for row in rows:
        assert len(row["reward"]["if_turn"]) == 3 and len(row["reward"]["cc_turn"]) == 3
        assert all(1.0 <= v <= 5.0 for v in row["reward"]["if_turn"])
        assert row["filter"]["groups"] == 2
        for stage in ("rollout", "judge", "consistency", "buffer", "learner", "weight_sync"):
            assert row[f"timing/{stage}_s"] >= 0
        assert row["throughput/rollout_images_per_s"] > 0
    trained = [r for r in rows if r["num_samples"] > 0]
    assert trained and all(r["loss"] == r["loss"] for r in trained)  # finite where samples were kept
    assert (path / "config.yaml").is_file() and list(path.glob("events.out.tfevents.*"))
    assert (path / "samples" / "step_000000.png").is_file()
    lora = load_file(path / "checkpoints" / "step_000002" / "lora" / "pytorch_lora_weights.safetensors")
    assert lora and all(k.startswith("transformer.") for k in lora)
    driver = json.loads((path / "checkpoints" / "step_000002" / "driver.json").read_text())
    assert driver["step"] == 2 and driver["version"] == 2
    from ray import serve  # the job deleted both services on its way out (all at once, then waited)

    assert not any(app.startswith("edit-rl") for app in serve.status().applications)


def test_grpo_async_trains_on_one_step_stale_sde_rollouts(tmp_path):
    _, rows = run_job(tmp_path, *SYNTHETIC, "objective.name=grpo", "sampler.method=sde", "trainer.mode=async",
                      "trainer.num_steps=3", "trainer.save_every=0", "trainer.sample_every=0")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0]["staleness"]["max"] == 0  # the first step's rollouts used the initial weights
    assert [r["staleness"]["max"] for r in rows[1:]] == [1, 1]  # then they overlap the previous update
    assert all(r["num_samples"] == 2 * 4 * 3 for r in rows)
    assert all(0.0 <= r["clip_frac"] <= 1.0 for r in rows)


def test_the_time_budget_ends_the_run_after_the_last_step_that_fits_with_a_checkpoint(tmp_path, capsys):
    # A budget far below one step: the first step always runs, then one more would overrun it.
    path, rows = run_job(tmp_path, *SYNTHETIC, "trainer.num_steps=4", "trainer.save_every=3", "trainer.sample_every=0",
                         "trainer.time_budget_minutes=0.001")
    assert [r["step"] for r in rows] == [0]
    assert sorted(p.name for p in (path / "checkpoints").glob("step_*")) == ["step_000001"]  # not on save_every's grid
    assert json.loads((path / "checkpoints" / "step_000001" / "driver.json").read_text())["step"] == 1
    assert "trainer.time_budget_minutes=0.001: stopped after step 1 of 4" in capsys.readouterr().out


def test_resume_after_the_driver_is_sigkilled_continues_exactly_like_an_uninterrupted_run(tmp_path):
    # Async mode: the checkpoint after step 1 also holds step 2's in-flight rollouts' weights. The
    # killed driver is a real `python -m jobs.train` process with its own local Ray.
    common = [*SYNTHETIC, "trainer.mode=async", "trainer.save_every=1", "trainer.sample_every=0",
              "trainer.num_steps=3"]
    full, full_rows = run_job(tmp_path / "full", *common)

    out = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "jobs.train", "--output-dir", str(out), *common],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 900
        while not list(out.glob("*/checkpoints/step_000002")) and driver.poll() is None:
            assert time.monotonic() < deadline, "no step-2 checkpoint in 900 s"
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]  # killed mid-run
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    run_dir = next(out.glob("*/checkpoints/step_000002")).parents[1]
    assert not (run_dir / "checkpoints" / "step_000003").exists()
    assert [r["step"] for r in read_metrics(run_dir)] == [0, 1]

    resumed = train.main(["--output-dir", str(out), "--resume", str(run_dir), *common])
    assert resumed == run_dir
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]  # no duplicate or missing line
    for key in ("loss", "grad_norm", "num_samples"):
        assert rows[2][key] == full_rows[2][key], key
    assert rows[2]["reward"] == full_rows[2]["reward"]
    a = load_file(full / "checkpoints" / "step_000003" / "lora" / "pytorch_lora_weights.safetensors")
    b = load_file(run_dir / "checkpoints" / "step_000003" / "lora" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_killed_worker_and_replica_processes_cost_retries_and_an_unscorable_trajectory_its_group(tmp_path):
    # The default single rollout worker: its process is SIGKILLed during step 1's rollout, so the
    # resend must wait for Ray to restart it; the judge and consistency replicas' processes too,
    # each with a request on it. At step 2 one trajectory's judge request is one the scorer rejects
    # (an image index out of range): its group is dropped, counted, and the run goes on.
    common = [*SYNTHETIC, "trainer.save_every=2", "trainer.sample_every=0"]
    full, full_rows = run_job(tmp_path / "full", *common, "trainer.num_steps=2")
    cfg = load_config(CPU_TINY, [*common, "trainer.num_steps=3"])
    assert cfg.rollout.num_workers == 1
    run = create_run_dir(cfg, output_dir=tmp_path / "faults")
    trainer = Trainer(cfg, run)
    worker_pid = ray.get(trainer.workers[0].ping.remote())
    pids = {kind: handle.placement.remote().result()["pid"]
            for kind, handle in (("judge", trainer.dispatcher.judge), ("consistency", trainer.dispatcher.consistency))}
    killed, bad = {}, {}
    submit, judge_remote = trainer.dispatcher._submit, trainer.dispatcher.judge.remote
    consistency_remote = trainer.dispatcher.consistency.remote

    def submit_then_kill_worker(call, worker_index=None):  # the rollout is running when its process dies
        submit(call, worker_index)
        if call.request.step == 1 and "worker" not in killed:
            killed["worker"] = True
            threading.Timer(0.5, os.kill, (worker_pid, signal.SIGKILL)).start()

    def judge_then_kill_replica(item):  # the request is queued or running when the replica dies
        if trainer.step == 2 and not bad:
            bad["item"] = item
        if item is bad.get("item"):  # also when it is sent again
            item = dataclasses.replace(item, index=10_000)
        return kill_replica_at_step_1("judge", judge_remote(item))

    def kill_replica_at_step_1(kind, response):
        if trainer.step == 1 and kind not in killed:
            killed[kind] = True
            response._to_object_ref_sync()  # waits until the request is on the replica
            os.kill(pids[kind], signal.SIGKILL)
        return response

    trainer.dispatcher._submit = submit_then_kill_worker
    trainer.dispatcher.judge.remote = judge_then_kill_replica
    trainer.dispatcher.consistency.remote = lambda item: kill_replica_at_step_1("consistency", consistency_remote(item))
    try:
        trainer.fit()
        restarted_pid = ray.get(trainer.workers[0].ping.remote())
    finally:
        trainer.close()
    rows = read_metrics(run.path)
    assert killed == {"worker": True, "judge": True, "consistency": True} and restarted_pid != worker_pid
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[1]["retries/rollout"] >= 1 and rows[1]["retries/judge"] >= 1 and rows[1]["retries/consistency"] >= 1
    # The faults cost retries only: steps 0 and 1 equal the uninterrupted run's, bit for bit.
    for row, ref in zip(rows[:2], full_rows):
        for key in ("loss", "grad_norm", "num_samples", "reward"):
            assert row[key] == ref[key], key
    a = load_file(full / "checkpoints" / "step_000002" / "lora" / "pytorch_lora_weights.safetensors")
    b = load_file(run.path / "checkpoints" / "step_000002" / "lora" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    # Step 2: one group dropped for the unscorable trajectory, the other trained (G=4 x 3 turns).
    assert [r["dropped/scoring_failed"] for r in rows] == [0, 0, 1]
    assert rows[2]["num_samples"] == 12 and rows[2].get("retries/judge", 0) == 0
    assert trainer.assembler.counters.dropped_groups == 1 and trainer.assembler.counters.completed_groups == 5


def test_a_dead_learner_rank_fails_its_step_and_the_run_continues_from_the_last_checkpoint(tmp_path):
    cfg = load_config(CPU_TINY, [*SYNTHETIC, "trainer.num_steps=3", "trainer.save_every=1",
                                 "trainer.sample_every=0"])
    run = create_run_dir(cfg, output_dir=tmp_path)
    trainer = Trainer(cfg, run)
    first_group = trainer.learners
    train_step = first_group.train_step

    def kill_a_rank_then_train(sharded, step):
        if step == 2:
            ray.kill(first_group.actors[0])
        return train_step(sharded, step)

    first_group.train_step = kill_a_rank_then_train
    try:
        trainer.fit()
    finally:
        trainer.close()
    assert trainer.learners is not first_group and first_group.failed is not None
    assert "learner rank 0 failed in train_step" in str(first_group.failed)
    rows = read_metrics(run.path)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["num_samples"] for r in rows] == [24, 24, 24]
    assert (run.path / "checkpoints" / "step_000003").is_dir()


def test_more_groups_a_step_than_training_chains_is_refused_before_any_actor_starts(tmp_path):
    cfg = load_config(CPU_TINY, ["data.source=synthetic", "data.synthetic_train_chains=4", "rollout.groups_per_step=5"])
    with pytest.raises(ValueError, match="rollout.groups_per_step=5 needs that many distinct training chains a step; "
                                         "the data has 4"):
        Trainer(cfg, create_run_dir(cfg, output_dir=tmp_path))


def test_a_num_turns_the_data_lacks_is_refused_before_any_actor_starts(tmp_path):
    cfg = load_config(CPU_TINY, ["rollout.num_turns=2"])
    with pytest.raises(ValueError, match="rollout.num_turns=2, but no chain of the synthetic train split has 2 turns"):
        Trainer(cfg, create_run_dir(cfg, output_dir=tmp_path))
    assert all(pg["state"] == "REMOVED" for pg in ray.util.placement_group_table().values())  # nothing reserved
