"""Learner ranks as Ray actors on a real local Ray (2 CPUs): FSDP2 over gloo and DeepSpeed ZeRO-2
and ZeRO-3 with two ranks against one process on the same data (ZeRO-3 with every parameter
partitioned and three micro-batches accumulated per update), a world-size independent checkpoint,
exact DeepSpeed resumes, and a dead rank failing the step loudly."""

from __future__ import annotations

import dataclasses

import pytest
import ray
import torch
from safetensors.torch import load_file

from actors.learner import LearnerGroup, LearnerRankError
from edit_rl.buffer.sharding import shard_samples
from edit_rl.buffer.training_batch import TrainingSample
from edit_rl.config.schema import Config, EditorConfig, LearnerConfig, LoRAConfig, SamplerConfig
from edit_rl.editors.load import load_editor
from edit_rl.editors.rollout import rollout_chains
from edit_rl.objectives.old_policy import old_policy_decay
from edit_rl.training.learner import Learner
from edit_rl.training.micro_batch import build_micro_batch
from edit_rl.training.turn_sample import split_rollout

ADVANTAGES, RS = [1.0, -1.0, 0.5], [1.0, 0.0, 0.6]
TOLERANCE_BF16 = 0.05  # largest LoRA difference from one process, as a share of the update's size


def config(backend: str = "fsdp2", num_ranks: int = 2, zero_stage: int = 2, micro_batch_size: int = 2,
           ema: bool = False, strategy: str = "shard", gpu_dtypes: bool = False) -> Config:
    """``gpu_dtypes``: the GPU presets' bf16 base and gradient checkpointing (the LoRA stays fp32)."""
    cfg = Config()
    cfg.editor = EditorConfig(family="flux_kontext", name_or_path="tiny/flux-kontext",
                              dtype="bfloat16" if gpu_dtypes else "float32", resolution=32,
                              max_sequence_length=16, gradient_checkpointing=gpu_dtypes)
    cfg.lora = LoRAConfig(rank=2, alpha=4)
    cfg.sampler = SamplerConfig(method="sde", num_steps=3)
    cfg.learner = LearnerConfig(backend=backend, zero_stage=zero_stage, num_ranks=num_ranks, lr=1e-2,
                                micro_batch_size=micro_batch_size, num_cpus_per_rank=1, num_gpus_per_rank=0,
                                zero3_persistence_threshold=0,  # ZeRO-3: partition even the tiny model's weights
                                ema=ema, strategy=strategy)
    return cfg.validate()


@pytest.fixture(scope="module")
def local_ray():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model, shared cores: see tests/edit_rl/training/conftest.py
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


def rollout_samples(cfg: Config) -> list[TrainingSample]:
    editor = load_editor(cfg.editor)
    g = torch.Generator().manual_seed(5)
    images = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear")
    rollout = rollout_chains(editor, images, [["make it red", "add a hat"]], 3, cfg.sampler, g)
    return [TrainingSample(f"traj{b}", "chain0", 0, b, k, ray.put(payload), ADVANTAGES[b], RS[b], 0)
            for b, turns in enumerate(split_rollout(rollout)) for k, payload in enumerate(turns)]


@pytest.fixture(scope="module")
def samples(local_ray) -> list[TrainingSample]:
    """3 trajectories x 2 turns; payloads are TurnSamples in the object store, as a rollout worker puts them."""
    return rollout_samples(config())


@pytest.fixture(scope="module")
def bf16_samples(local_ray) -> list[TrainingSample]:
    """The same from a bf16 editor, as the GPU presets' rollout workers make them."""
    return rollout_samples(config(gpu_dtypes=True))


@pytest.fixture(scope="module")
def one_process(samples) -> tuple[Learner, dict[str, float]]:
    """The reference: one process, no process group, the same samples in micro-batches of 2."""
    learner = Learner(config(num_ranks=1))
    local = [dataclasses.replace(s, payload=ray.get(s.payload)) for s in samples]
    batches = [build_micro_batch(mb) for mb in shard_samples(local, 1, 2).ranks[0]]
    return learner, learner.train_step(batches, step=0)


def check_against_one_process(group: LearnerGroup, metrics: dict[str, float], one_process,
                              micro_batches: int = 2) -> None:
    reference, ref_metrics = one_process
    states = group.lora_states()
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # both ranks hold the same weights
    expected = reference.lora_state()
    assert max(float((states[0][k] - expected[k]).abs().max()) for k in expected) < 1e-6
    old, expected_old = group.lora_state("old"), reference.lora_state("old")  # what NFT rollouts sample with
    assert max(float((old[k] - expected_old[k]).abs().max()) for k in expected_old) < 1e-6
    synced = ray.get(group.lora_state_ref("old"))  # the weight sync's reference, put by rank 0
    assert synced.keys() == old.keys() and all(torch.equal(synced[k], old[k]) for k in old)
    assert metrics["num_samples"] == ref_metrics["num_samples"] == 6
    assert metrics["num_micro_batches"] == micro_batches and ref_metrics["num_micro_batches"] == 3
    for name in ("loss", "policy_loss", "kl_loss", "r_mean", "old_deviation"):
        assert metrics[name] == pytest.approx(ref_metrics[name], rel=1e-6, abs=1e-12), name
    assert metrics["grad_norm"] == pytest.approx(ref_metrics["grad_norm"], rel=1e-5)


def test_fsdp2_two_ranks_train_like_one_process_and_checkpoint_for_any_world_size(samples, one_process, tmp_path):
    group = LearnerGroup(config("fsdp2"))
    try:
        metrics = group.train_step(shard_samples(samples, 2, 2), step=0)
        check_against_one_process(group, metrics, one_process)
        group.save_checkpoint(str(tmp_path))
        single = Learner(config(num_ranks=1))
        single.load_checkpoint(tmp_path)  # written by 2 ranks, read by 1
        trained = group.lora_state()
        assert all(torch.equal(single.lora_state()[k], trained[k]) for k in trained)
        assert single.last_step == 0 and single.optimizer_steps == 1
        group.load_checkpoint(str(tmp_path))
        assert all(torch.equal(group.lora_state()[k], trained[k]) for k in trained)
    finally:
        group.shutdown()


def test_a_replicated_base_two_ranks_train_like_one_process_and_checkpoint_for_any_world_size(
        samples, one_process, tmp_path):
    # The same bound against the same one-process update as FSDP2's test above: the replicated base
    # with all-reduced LoRA gradients gives FSDP2's update to 2e-6.
    group = LearnerGroup(config("fsdp2", strategy="replicate"))
    try:
        metrics = group.train_step(shard_samples(samples, 2, 2), step=0)
        check_against_one_process(group, metrics, one_process)
        group.save_checkpoint(str(tmp_path))
        single = Learner(config(num_ranks=1))
        single.load_checkpoint(tmp_path)
        trained = group.lora_state()
        assert all(torch.equal(single.lora_state()[k], trained[k]) for k in trained)
    finally:
        group.shutdown()


@pytest.mark.parametrize("strategy", ["shard", "replicate"])
def test_two_ranks_in_the_gpu_presets_dtypes_train_like_one_process(bf16_samples, strategy):
    """bf16 base, fp32 LoRA, gradient checkpointing: both strategies against one process in the
    same dtypes (bf16 rounding differs with the micro-batch split, hence the looser bounds)."""
    samples = bf16_samples
    local = [dataclasses.replace(s, payload=ray.get(s.payload)) for s in samples]
    reference = Learner(config(num_ranks=1, gpu_dtypes=True))
    ref_metrics = reference.train_step([build_micro_batch(mb) for mb in shard_samples(local, 1, 2).ranks[0]], 0)
    group = LearnerGroup(config("fsdp2", strategy=strategy, gpu_dtypes=True))
    try:
        metrics = group.train_step(shard_samples(samples, 2, 2), step=0)
        states = group.lora_states()
    finally:
        group.shutdown()
    expected = reference.lora_state()
    assert all(t.dtype == torch.float32 for t in states[0].values())
    assert all(torch.equal(states[0][k], states[1][k]) for k in expected)
    before = Learner(config(num_ranks=1, gpu_dtypes=True)).lora_state()
    moved = max(float((expected[k] - before[k]).abs().max()) for k in expected)
    diff = max(float((states[0][k] - expected[k]).abs().max()) for k in expected)
    assert moved > 1e-3 and diff < TOLERANCE_BF16 * moved, (diff, moved)
    for name in ("loss", "grad_norm"):
        assert metrics[name] == pytest.approx(ref_metrics[name], rel=1e-2), name


def test_deepspeed_zero2_two_ranks_skip_nonfinite_resume_and_a_dead_rank_fails_the_step(
        samples, one_process, tmp_path):
    group = LearnerGroup(config("deepspeed"))
    try:
        sharded = shard_samples(samples, 2, 2)
        metrics = group.train_step(sharded, step=0)
        check_against_one_process(group, metrics, one_process)
        trained = group.lora_state()

        nan_payload = ray.put(dataclasses.replace(ray.get(samples[1].payload),
                                                  x0=torch.full_like(ray.get(samples[1].payload).x0, float("nan"))))
        poisoned = [dataclasses.replace(s, payload=nan_payload) if i == 1 else s for i, s in enumerate(samples)]
        metrics = group.train_step(shard_samples(poisoned, 2, 2), step=1)  # the NaN is on rank 1 only
        assert metrics["skipped_nonfinite"] == 1 and metrics["optimizer_steps"] == 0
        assert all(torch.equal(s[k], trained[k]) for s in group.lora_states() for k in trained)

        group.save_checkpoint(str(tmp_path))
        group.train_step(sharded, step=2)
        uninterrupted = group.lora_state()
        group.load_checkpoint(str(tmp_path))
        assert all(torch.equal(group.lora_state()[k], trained[k]) for k in trained)
        group.train_step(sharded, step=2)
        assert all(torch.equal(group.lora_state()[k], uninterrupted[k]) for k in trained)

        ray.kill(group.actors[1], no_restart=True)
        with pytest.raises(LearnerRankError, match="learner rank 1 failed in train_step") as failure:
            group.train_step(sharded, step=3)
        assert failure.value.rank == 1 and group.actors == []  # the survivors were stopped too
        with pytest.raises(RuntimeError, match="failed earlier"):
            group.lora_state()
    finally:
        group.shutdown()


def same_states(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_deepspeed_zero3_two_ranks_accumulate_micro_batches_like_one_process_skip_and_resume(
        samples, one_process, tmp_path):
    group = LearnerGroup(config("deepspeed", zero_stage=3, micro_batch_size=1, ema=True))
    try:
        sharded = shard_samples(samples, 2, 1)  # 3 micro-batches of 1 per rank: 3 backwards per update
        metrics = group.train_step(sharded, step=0)
        check_against_one_process(group, metrics, one_process, micro_batches=3)
        trained = group.lora_state()
        # the evaluation EMA of the partitioned LoRA, what save_lora writes: e = 2/11 after update 1
        init = Learner(config(num_ranks=1)).lora_state()  # the LoRA init is the same in every run
        group.save_lora(str(tmp_path / "ema"))
        saved = load_file(tmp_path / "ema" / "pytorch_lora_weights.safetensors")
        assert max(float((saved[f"transformer.{k}"] - (2 / 11 * init[k] + 9 / 11 * trained[k])).abs().max())
                   for k in trained) < 1e-6
        group.save_checkpoint(str(tmp_path))
        assert sorted(f.name for f in (tmp_path / "learner").glob("zero_pp_rank_*_model_states.pt")) == [
            "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"]  # ZeRO-3's

        payload = ray.get(samples[1].payload)
        nan_payload = ray.put(dataclasses.replace(payload, x0=torch.full_like(payload.x0, float("nan"))))
        poisoned = [dataclasses.replace(s, payload=nan_payload) if i == 1 else s for i, s in enumerate(samples)]
        metrics = group.train_step(shard_samples(poisoned, 2, 1), step=1)  # the NaN is on one rank only
        assert metrics["skipped_nonfinite"] == 1 and metrics["optimizer_steps"] == 0
        assert all(same_states(s, trained) for s in group.lora_states())
        assert same_states(group.lora_state("old"), trained)  # decay(0) = 0: old = theta after step 0

        metrics = group.train_step(sharded, step=300)
        default, old = group.lora_state(), group.lora_state("old")
        decay = old_policy_decay(300, 1)
        assert metrics["optimizer_steps"] == 1 and metrics["old_decay"] == decay == pytest.approx(0.3)
        assert max(float((old[k] - (decay * trained[k] + (1 - decay) * default[k])).abs().max())
                   for k in old) < 1e-6  # the soft update of the partitioned old adapter

        group.load_checkpoint(str(tmp_path))
        assert all(same_states(s, trained) for s in group.lora_states())
        assert same_states(group.lora_state("old"), trained)
        group.save_lora(str(tmp_path / "ema-restored"))  # the EMA came back with the checkpoint
        assert same_states(load_file(tmp_path / "ema-restored" / "pytorch_lora_weights.safetensors"), saved)
        resumed = group.train_step(sharded, step=300)
        # the same update as after the skipped step: the skip left no gradient behind
        assert {k: v for k, v in resumed.items() if k != "total_skipped_nonfinite"} == {
            k: v for k, v in metrics.items() if k != "total_skipped_nonfinite"}
        assert same_states(group.lora_state(), default) and same_states(group.lora_state("old"), old)
    finally:
        group.shutdown()
