"""Multi-turn rollouts on the tiny FLUX.1-Kontext: shapes, chaining of turns, determinism, SDE records."""

import pytest
import torch

from edit_rl.config.schema import SamplerConfig
from edit_rl.editors.rollout import MultiTurnRollout, rollout_chains
from edit_rl.flow.sde import sde_step_with_logprob

CHAINS = [["make it red", "add a hat", "zoom out"], ["remove the dog", "make it night", "add snow"]]


def _rollout(editor, images, sampler: SamplerConfig, seed: int, group_size: int = 2, **kwargs) -> MultiTurnRollout:
    chains = CHAINS[: images.shape[0]]
    return rollout_chains(editor, images, chains, group_size, sampler, torch.Generator().manual_seed(seed), **kwargs)


@pytest.fixture(scope="module")
def dpm2_rollout(shared_editor, input_images) -> MultiTurnRollout:
    return _rollout(shared_editor, input_images, SamplerConfig(method="dpm2", num_steps=3), seed=0)


def test_shapes_and_row_layout(dpm2_rollout):
    r = dpm2_rollout
    assert len(r.turns) == 3 and r.num_chains == 2 and r.group_size == 2
    assert r.group_ids.tolist() == [0, 0, 1, 1]
    assert r.input_images.shape == (4, 3, 64, 64)
    for k, turn in enumerate(r.turns):
        assert turn.prompts == [CHAINS[0][k]] * 2 + [CHAINS[1][k]] * 2
        assert turn.images.shape == (4, 3, 64, 64) and turn.images.dtype == torch.float32
        assert turn.x0.shape == (4, 16, 64)
        assert turn.condition.batch_size == 4
        assert turn.sigmas.shape == (4,) and turn.sigmas[0] == 1 and turn.sigmas[-1] == 0
        assert turn.latents is None and turn.log_probs is None  # dpm2: nothing recorded
        assert not torch.equal(turn.x0[0], turn.x0[1])  # group members get their own noise


def test_each_turn_edits_the_previous_decoded_output(shared_editor, input_images, dpm2_rollout):
    r = dpm2_rollout
    assert torch.equal(r.reference_images(0), input_images.repeat_interleave(2, dim=0))
    assert torch.equal(r.turns[0].condition.reference_latents, shared_editor.encode_images(r.reference_images(0)))
    for k in (1, 2):
        assert r.reference_images(k) is r.turns[k - 1].images
        assert torch.equal(r.turns[k].condition.reference_latents,
                           shared_editor.encode_images(r.turns[k - 1].images))
    # the stored x0 decodes to the stored images
    assert torch.allclose(shared_editor.decode(r.turns[1].x0), r.turns[1].images, atol=1e-6)


def test_deterministic_given_the_seed(shared_editor, input_images, dpm2_rollout):
    again = _rollout(shared_editor, input_images, SamplerConfig(method="dpm2", num_steps=3), seed=0)
    other = _rollout(shared_editor, input_images, SamplerConfig(method="dpm2", num_steps=3), seed=1)
    for a, b, c in zip(dpm2_rollout.turns, again.turns, other.turns):
        assert torch.equal(a.x0, b.x0) and torch.equal(a.images, b.images)
        assert not torch.allclose(a.x0, c.x0)


def test_sde_rollout_records_steps_whose_log_probs_the_learner_can_recompute(shared_editor, input_images):
    sampler = SamplerConfig(method="sde", num_steps=3, noise_level=0.9)
    r = _rollout(shared_editor, input_images[:1], sampler, seed=4, group_size=2)
    turn = r.turns[1]
    assert turn.latents.shape == (2, 3, 16, 64) and turn.next_latents.shape == (2, 3, 16, 64)
    assert turn.log_probs.shape == (2, 3) and turn.log_probs.dtype == torch.float32
    assert turn.sde_steps.tolist() == [0, 1, 2]
    assert torch.equal(turn.next_latents[:, -1], turn.x0)
    assert torch.equal(turn.latents[:, 1:], turn.next_latents[:, :-1])
    # GRPO's learner: velocity at the stored x_j with the stored condition -> same log-prob of x_{j+1}
    j = 1
    sigmas = turn.sigmas
    with torch.no_grad():
        v = shared_editor.velocity(turn.latents[:, j], sigmas[j].float().expand(2), turn.condition)
    out = sde_step_with_logprob(turn.latents[:, j], v, float(sigmas[j]), float(sigmas[j + 1]), float(sigmas[1]),
                                0.9, prev_sample=turn.next_latents[:, j])
    assert torch.allclose(out.log_prob, turn.log_probs[:, j], atol=1e-4)


def test_sde_window_and_evaluation_settings(shared_editor, input_images):
    sampler = SamplerConfig(method="sde", num_steps=3, sde_window=[1, 2], eval_method="euler", eval_num_steps=2)
    r = _rollout(shared_editor, input_images[:1], sampler, seed=0, group_size=2)
    assert r.turns[0].sde_steps.tolist() == [1] and r.turns[0].log_probs.shape == (2, 1)
    ev = _rollout(shared_editor, input_images[:1], sampler, seed=0, group_size=2, evaluation=True)
    assert ev.turns[0].sigmas.shape == (3,) and ev.turns[0].latents is None


def test_rejects_chains_of_unequal_length(shared_editor, input_images):
    with pytest.raises(ValueError, match="same number"):
        rollout_chains(shared_editor, input_images, [["a", "b"], ["c"]], 2, SamplerConfig(),
                       torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="one input image per chain"):
        rollout_chains(shared_editor, input_images[:1], CHAINS, 2, SamplerConfig(), torch.Generator().manual_seed(0))
