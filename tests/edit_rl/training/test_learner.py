"""The learner on one process (world size 1, no process group): DiffusionNFT and Flow-GRPO steps on
the tiny FLUX.1-Kontext editor, non-finite skips, exact resume, diffusers-format LoRA."""

import copy
import dataclasses

import pytest
import torch
from safetensors.torch import load_file

from edit_rl.editors import lora
from edit_rl.objectives.old_policy import old_policy_decay
from edit_rl.training.learner import Learner
from edit_rl.training.micro_batch import build_micro_batch


def micro_batches(samples, size=2):
    return [build_micro_batch(samples[i:i + size]) for i in range(0, len(samples), size)]


def adapter(learner, name):
    return {k: p.detach().clone() for k, p in lora.adapter_parameters(learner.editor.transformer, name)}


def base_params(learner):
    return {k: p.detach().clone() for k, p in learner.editor.transformer.named_parameters() if "lora_" not in k}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def max_diff(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def x0_error(learner, samples):
    """Mean x0-space error of the trained policy at fixed noise levels and noise (evaluation only)."""
    mb = build_micro_batch(samples)
    x0, g = mb.turns.x0, torch.Generator().manual_seed(123)
    errors = []
    with torch.no_grad():
        for t in (0.3, 0.6, 0.9):
            noise = torch.randn(x0.shape, generator=g)
            x_t = (1 - t) * x0 + t * noise
            v = learner.editor.velocity(x_t, torch.full((x0.shape[0],), t), mb.turns.condition)
            errors.append(float(((x_t - t * v - x0) ** 2).mean()))
    return sum(errors) / len(errors)


def test_nft_step_trains_lora_only_and_moves_old_with_the_scheduled_decay(tiny_config, make_samples):
    learner = Learner(tiny_config())
    batches = micro_batches(make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6]))
    base, default0 = base_params(learner), adapter(learner, "default")
    assert same(adapter(learner, "old"), default0)

    m = learner.train_step(batches, step=0)
    default1, old1 = adapter(learner, "default"), adapter(learner, "old")
    assert same(base_params(learner), base)
    assert max_diff(default1, default0) > 1e-3  # lr 1e-2: Adam moves the LoRA B matrices by ~lr
    assert same(old1, default1)  # decay(0) = 0: old <- theta
    assert m["optimizer_steps"] == 1 and m["num_samples"] == 6 and m["num_micro_batches"] == 3
    assert m["old_decay"] == 0.0 and m["skipped_nonfinite"] == 0 and m["grad_norm"] > 0
    assert m["r_mean"] == pytest.approx((1.0 + 0.0 + 0.6) / 3, abs=1e-6)
    assert m["loss"] == pytest.approx(m["policy_loss"] + m["kl_loss"])

    m = learner.train_step(batches, step=300)
    d = old_policy_decay(300, 1)
    assert d == pytest.approx(0.3) and m["old_decay"] == d
    default2, old2 = adapter(learner, "default"), adapter(learner, "old")
    assert max_diff(old2, {k: d * old1[k] + (1 - d) * default2[k] for k in old1}) < 1e-6
    assert max_diff(old2, default2) > 1e-5


def test_nft_pulls_positive_samples_toward_their_x0(tiny_config, make_samples):
    samples = make_samples([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    learner = Learner(tiny_config(lr=3e-2))
    batches = micro_batches(samples)
    errors = [x0_error(learner, samples)]
    for step in range(6):
        learner.train_step(batches, step)
        errors.append(x0_error(learner, samples))
    # all r = 1: DiffusionNFT is weighted flow matching on the samples' own x0 (~0.945 -> ~0.89;
    # the rest is irreducible: one condition, three different x0)
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.95 * errors[0], errors


def test_padding_and_micro_batching_do_not_change_the_update(tiny_config, make_samples):
    samples = make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6])[:4]
    a, b = Learner(tiny_config()), Learner(tiny_config())
    a.train_step(micro_batches(samples, size=2), step=0)
    padded = [[s, dataclasses.replace(samples[(i + 1) % 4], weight=0.0)] for i, s in enumerate(samples)]
    m = b.train_step([build_micro_batch(mb) for mb in padded], step=0)
    assert m["num_samples"] == 4 and m["num_micro_batches"] == 4
    assert max_diff(a.lora_state(), b.lora_state()) < 1e-6

    two = Learner(tiny_config(optimizer_steps_per_step=2))
    m = two.train_step(micro_batches(samples, size=1), step=0)
    assert m["optimizer_steps"] == 2 and two.optimizer_steps == 2


def test_shared_group_noise_cancels_what_the_noise_alone_decides(tiny_config, make_samples):
    """Three copies of one trajectory (same x0 and condition per turn) whose r's cancel (sum of 2r - 1 = 0):
    at theta = old the NFT gradient is sum_i (2 r_i - 1) x (what sample i's draws give). With the group's
    noise shared every term is the same and the sum vanishes; with per-sample noise it does not."""
    samples = make_samples([1.0, -1.0, 0.0], [0.7, 0.3, 0.5])
    first = {s.turn: s.payload for s in samples if s.rollout_id == "traj0"}
    copies = [dataclasses.replace(s, payload=first[s.turn]) for s in samples]
    norms = {}
    for shared in (False, True):
        cfg = tiny_config()
        cfg.objective.nft.shared_group_noise = shared
        norms[shared] = Learner(cfg).train_step(micro_batches(copies), step=0)["grad_norm"]
    assert norms[False] > 1e-4
    assert norms[True] < 1e-5 * norms[False]


def test_min_sigma_trains_only_the_noisiest_levels(tiny_config, make_samples, turn_samples):
    """objective.nft.min_sigma keeps the rollout's levels with sigma >= min_sigma: with every level
    trained (timestep_fraction 1), the learner's velocity calls see exactly those sigmas."""
    grid = [float(s) for s in turn_samples[0][0].sigmas[:-1]]
    assert len(grid) == 3 and grid == sorted(grid, reverse=True)
    samples = make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6])
    seen = {}
    for min_sigma in (0.0, (grid[1] + grid[2]) / 2, 0.999):
        cfg = tiny_config()
        cfg.objective.nft.timestep_fraction = 1.0
        cfg.objective.nft.min_sigma = min_sigma
        learner = Learner(cfg)
        velocity, sigmas = learner.editor.velocity, set()

        def spy(x, t, cond):
            sigmas.update(round(float(v), 6) for v in t)
            return velocity(x, t, cond)

        learner.editor.velocity = spy
        m = learner.train_step(micro_batches(samples), step=0)
        assert m["num_samples"] == 6 and m["grad_norm"] > 0
        seen[min_sigma] = sorted(sigmas, reverse=True)
    rounded = [round(s, 6) for s in grid]
    assert list(seen.values()) == [rounded, rounded[:2], rounded[:1]]  # 0.999: still the first level


def test_grpo_recomputes_the_rollout_log_probs_and_zero_advantages_change_nothing(tiny_config, make_samples):
    cfg = tiny_config("grpo")
    cfg.objective.grpo.kl_beta = 0.0
    learner = Learner(cfg)
    start = learner.lora_state()
    m = learner.train_step(micro_batches(make_samples([0.0, 0.0, 0.0], [0.5, 0.5, 0.5])), step=0)
    assert m["num_samples"] == 0 and m["optimizer_steps"] == 0 and "old_decay" not in m
    assert same(learner.lora_state(), start)

    m = learner.train_step(micro_batches(make_samples([1.0, -1.0, 0.0], [0.6, 0.4, 0.5])), step=1)
    assert m["num_samples"] == 4 and m["optimizer_steps"] == 1  # the zero-advantage trajectory is dropped
    # same weights as the rollout (fresh LoRA = base): the recomputed log-probs are the recorded ones
    assert m["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and m["approx_kl"] < 1e-10
    assert m["advantage_mean"] == pytest.approx(0.0, abs=1e-7) and m["kl_loss"] == 0.0
    assert max_diff(learner.lora_state(), start) > 1e-3


def test_grpo_kl_to_the_reference_grows_once_the_policy_moves(tiny_config, make_samples):
    cfg = tiny_config("grpo")
    cfg.objective.grpo.kl_beta = 0.04
    learner = Learner(cfg)
    batches = micro_batches(make_samples([1.0, -1.0, 0.5], [0.6, 0.4, 0.5]))
    first = learner.train_step(batches, step=0)
    second = learner.train_step(batches, step=1)
    assert first["kl_div"] == pytest.approx(0.0, abs=1e-12) and second["kl_div"] > 0
    assert second["kl_loss"] == pytest.approx(0.04 * second["kl_div"], rel=1e-6)
    assert second["ratio_mean"] != pytest.approx(1.0, abs=1e-7)


def test_a_nonfinite_loss_skips_the_step_and_keeps_weights_and_optimizer_state(tiny_config, make_samples):
    learner = Learner(tiny_config())
    good = micro_batches(make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6]))
    learner.train_step(good, step=0)
    default, old = adapter(learner, "default"), adapter(learner, "old")
    optimizer = copy.deepcopy(learner.backend.optimizer.state_dict())

    def poison(payload):
        return dataclasses.replace(payload, x0=torch.full_like(payload.x0, float("nan")))

    bad = make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6])
    bad[4] = make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6], poison)[4]
    m = learner.train_step(micro_batches(bad), step=1)
    assert m["skipped_nonfinite"] == 1 and m["optimizer_steps"] == 0 and m["total_skipped_nonfinite"] == 1
    assert m["loss"] != m["loss"]  # NaN reported
    assert same(adapter(learner, "default"), default) and same(adapter(learner, "old"), old)
    after = learner.backend.optimizer.state_dict()
    assert all(torch.equal(after["state"][i][k], optimizer["state"][i][k])
               for i in optimizer["state"] for k in optimizer["state"][i])
    assert all(p.grad is None for p in learner.backend.params)

    m = learner.train_step(good, step=2)
    assert m["optimizer_steps"] == 1 and m["total_skipped_nonfinite"] == 1 and learner.optimizer_steps == 2


def test_resuming_from_a_state_dict_repeats_the_uninterrupted_run_bit_exactly(tiny_config, make_samples, tmp_path):
    batches = micro_batches(make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6]))
    run = Learner(tiny_config())
    for step in (0, 1):
        run.train_step(batches, step)
    state = copy.deepcopy(run.state_dict())
    run.save_checkpoint(tmp_path)
    tail = [run.train_step(batches, step) for step in (2, 3)]

    for restore in ("state_dict", "file"):
        resumed = Learner(tiny_config())
        if restore == "state_dict":
            resumed.load_state_dict(state)
        else:
            resumed.load_checkpoint(tmp_path)
        assert resumed.last_step == 1 and resumed.optimizer_steps == 2
        assert [resumed.train_step(batches, step) for step in (2, 3)] == tail
        assert same(resumed.lora_state(), run.lora_state())
        assert same(adapter(resumed, "old"), adapter(run, "old"))
        a, b = resumed.backend.optimizer.state_dict()["state"], run.backend.optimizer.state_dict()["state"]
        assert all(torch.equal(a[i][k], b[i][k]) for i in b for k in b[i])


def test_lora_state_and_the_diffusers_lora_file(tiny_config, make_samples, tmp_path):
    learner = Learner(tiny_config())
    learner.train_step(micro_batches(make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6])), step=0)
    state = learner.lora_state()
    assert same(state, lora.adapter_state_dict(learner.editor.transformer))  # peft keys, rollout-loadable
    assert same(learner.lora_state("old"), lora.adapter_state_dict(learner.editor.transformer, "old"))
    learner.save_lora(tmp_path / "ours")
    lora.save_lora_weights(learner.editor, tmp_path / "reference")
    ours = load_file(tmp_path / "ours" / "pytorch_lora_weights.safetensors")
    assert same(ours, load_file(tmp_path / "reference" / "pytorch_lora_weights.safetensors"))
    assert same(ours, {f"transformer.{k}": v for k, v in state.items()})


def test_the_evaluation_ema_follows_the_reference_schedule_and_is_what_save_lora_writes(tiny_config, make_samples,
                                                                                        tmp_path):
    """ema_0 = the initial LoRA; after update s: ema_s = e_s ema_{s-1} + (1 - e_s) theta_s with
    e_s = min((1 + s) / (10 + s), max) (flow_grpo EMAModuleWrapper); a dropped update moves nothing."""
    good = micro_batches(make_samples([1.0, -1.0, 0.5], [1.0, 0.0, 0.6]))
    nan = micro_batches(make_samples([float("nan"), 1.0, 0.5], [float("nan"), 0.0, 0.6]))
    learner = Learner(tiny_config(ema=True, ema_max_decay=0.2))
    expected = {k: v.double() for k, v in learner.lora_state().items()}
    for step, batches, decay in ((0, good, 2 / 11), (1, nan, None), (2, good, 0.2), (3, good, 0.2)):
        learner.train_step(batches, step)
        if decay is not None:  # update s = 1, (dropped), 2, 3: e = 2/11, 3/12 -> capped 0.2, 0.2
            theta = {k: v.double() for k, v in learner.lora_state().items()}
            expected = {k: decay * expected[k] + (1 - decay) * theta[k] for k in expected}
        assert max_diff({k: v.float() for k, v in expected.items()}, learner.ema) < 1e-6, step
    assert learner.optimizer_steps == 3 and learner.skipped_nonfinite == 1
    assert max_diff(learner.ema, learner.lora_state()) > 1e-5  # the EMA lags the weights

    learner.save_lora(tmp_path / "lora")
    saved = load_file(tmp_path / "lora" / "pytorch_lora_weights.safetensors")
    assert same(saved, {f"transformer.{k}": v for k, v in learner.ema.items()})

    learner.save_checkpoint(tmp_path / "ckpt")
    resumed = Learner(tiny_config(ema=True, ema_max_decay=0.2))
    resumed.load_checkpoint(tmp_path / "ckpt")
    assert same(resumed.ema, learner.ema)
    Learner(tiny_config()).save_checkpoint(tmp_path / "plain")
    with pytest.raises(ValueError, match="no EMA"):
        resumed.load_checkpoint(tmp_path / "plain")


def test_a_learner_rank_reads_only_the_transformers_weights(tiny_config):
    editor = Learner(tiny_config()).editor
    for encoder in (editor.vae, editor.text_encoder, editor.text_encoder_2):
        assert all(p.is_meta for p in encoder.parameters())
    assert not any(p.is_meta for p in editor.transformer.parameters())
