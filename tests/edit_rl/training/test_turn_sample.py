"""TurnSample payloads: split a multi-turn rollout per (trajectory, turn), batch them back."""

import dataclasses
import pickle

import pytest
import torch

from edit_rl.config.schema import SamplerConfig
from edit_rl.editors.rollout import rollout_chains
from edit_rl.training.micro_batch import build_micro_batch, noise_keys
from edit_rl.training.turn_sample import collate_turn_samples, split_rollout

GROUP = 3  # the rollout fixture: one chain x 3 samples, 2 turns
CHAINS = [["make the sky red", "add a small hat"]]


def test_split_gives_each_trajectory_and_turn_its_own_rows(rollout, turn_samples):
    assert len(turn_samples) == GROUP and all(len(turns) == 2 for turns in turn_samples)
    for k, turn in enumerate(rollout.turns):
        steps = turn.sde_steps
        assert steps.tolist() == [0, 1, 2]
        for b in range(GROUP):
            s = turn_samples[b][k]
            assert torch.equal(s.x0, turn.x0[b]) and torch.equal(s.sigmas, turn.sigmas)
            assert torch.equal(s.latents, turn.latents[b, steps])
            assert torch.equal(s.next_latents, turn.next_latents[b, steps])
            assert torch.equal(s.log_probs, turn.log_probs[b]) and torch.equal(s.sde_steps, steps)
            assert s.condition.batch_size == 1
            assert torch.equal(s.condition.reference_latents[0], turn.condition.reference_latents[b])
            # compact copies: pickling one sample ships its own rows, not the rollout's batch
            tensors = [s.x0, s.latents, s.next_latents, s.log_probs, s.sigmas, s.sde_steps,
                       *(getattr(s.condition, f.name) for f in dataclasses.fields(s.condition))]
            assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in tensors)
    restored = pickle.loads(pickle.dumps(turn_samples[2][1]))
    assert torch.equal(restored.latents, turn_samples[2][1].latents)


def test_collate_round_trip_restores_the_turn_and_its_velocity(editor, rollout, turn_samples):
    turn = rollout.turns[1]
    batch = collate_turn_samples([turn_samples[b][1] for b in range(GROUP)])
    assert torch.equal(batch.x0, turn.x0) and torch.equal(batch.log_probs, turn.log_probs)
    assert torch.equal(batch.latents, turn.latents[:, turn.sde_steps])
    assert torch.equal(batch.next_latents, turn.next_latents[:, turn.sde_steps])
    for f in dataclasses.fields(turn.condition):
        assert torch.equal(getattr(batch.condition, f.name), getattr(turn.condition, f.name)), f.name
    sigma = torch.full((GROUP,), 0.6)
    with torch.no_grad():
        assert torch.equal(editor.velocity(turn.latents[:, 1], sigma, batch.condition),
                           editor.velocity(turn.latents[:, 1], sigma, turn.condition))


def test_windowed_and_ode_rollouts(editor, rollout):
    images = rollout.input_images[:1]
    window = SamplerConfig(method="sde", num_steps=3, sde_window=[1, 2])
    ro = rollout_chains(editor, images, CHAINS[:1], 1, window, torch.Generator().manual_seed(0))
    s = split_rollout(ro)[0][0]
    assert s.sde_steps.tolist() == [1] and s.latents.shape == (1, *ro.turns[0].x0.shape[1:])
    assert torch.equal(s.latents[0], ro.turns[0].latents[0, 1]) and s.log_probs.shape == (1,)
    ode = rollout_chains(editor, images, CHAINS[:1], 2, SamplerConfig(method="dpm2", num_steps=3),
                         torch.Generator().manual_seed(0))
    plain = split_rollout(ode)
    assert plain[1][0].latents is None and not plain[1][0].has_sde_steps
    batch = collate_turn_samples([plain[0][0], plain[1][0]])
    assert batch.log_probs is None and torch.equal(batch.x0, ode.turns[0].x0)
    with pytest.raises(ValueError, match="with and without recorded SDE steps"):
        collate_turn_samples([plain[0][0], split_rollout(rollout)[0][0]])


def test_collate_rejects_different_grids(turn_samples):
    other = dataclasses.replace(turn_samples[1][0], sigmas=turn_samples[1][0].sigmas * 0.5)
    with pytest.raises(ValueError, match="sigma grids"):
        collate_turn_samples([turn_samples[0][0], other])
    with pytest.raises(ValueError, match="empty"):
        collate_turn_samples([])


def test_micro_batch_carries_advantage_r_weight_and_keys(make_samples, turn_samples):
    samples = make_samples([1.5, -0.5, 0.0], [0.8, 0.4, 0.5])
    samples[3] = dataclasses.replace(samples[3], weight=0.0)  # a padding copy
    mb = build_micro_batch(samples[2:4])
    assert mb.batch_size == 2 and mb.keys == ("traj1/0", "traj1/1")
    assert mb.group_keys == ("chain0/0/0", "chain0/0/1")  # (chain, rollout step, turn): shared by the group
    assert noise_keys(mb, shared_group_noise=False) == mb.keys
    assert noise_keys(mb, shared_group_noise=True) == mb.group_keys
    other = build_micro_batch([samples[0], dataclasses.replace(samples[0], step=1)])
    assert other.group_keys == ("chain0/0/0", "chain0/1/0")  # another step's group draws anew
    assert mb.advantage.tolist() == [-0.5, -0.5] and mb.weight.tolist() == [1.0, 0.0]
    assert torch.allclose(mb.r, torch.tensor([0.4, 0.4]))
    assert torch.equal(mb.turns.x0[1], turn_samples[1][1].x0)
    resolved = build_micro_batch([dataclasses.replace(s, payload="handle") for s in samples[:2]],
                                 payloads=[turn_samples[0][0], turn_samples[0][1]])
    assert torch.equal(resolved.turns.x0, torch.stack([turn_samples[0][0].x0, turn_samples[0][1].x0]))
    with pytest.raises(TypeError, match="not a TurnSample"):
        build_micro_batch([dataclasses.replace(samples[0], payload="handle")])
