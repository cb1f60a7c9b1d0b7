"""Ground-truth turn pairs, and per-turn success bookkeeping on an oracle editor with one blind spot."""

import dataclasses

import numpy as np
import pytest
import torch

from edit_rl.editors.base import EditCondition, Editor
from edit_rl.judge.judge import JudgeRequest
from edit_rl.synthetic.editor_eval import evaluate_editor
from edit_rl.synthetic.edits import NotApplicable, apply_edit
from edit_rl.synthetic.grammar import parse_instruction
from edit_rl.synthetic.judge import SyntheticJudge
from edit_rl.synthetic.parse import parse_image
from edit_rl.synthetic.render import render
from edit_rl.synthetic.splits import make_split
from edit_rl.synthetic.turn_pairs import turn_pairs

BLIND_SPOT = "color_alter"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def chains():
    return make_split("heldout", 40)


def test_turn_pairs_are_chain_major_and_every_pair_is_a_success(chains):
    pairs = turn_pairs(chains[:10])
    assert len(pairs) == 30 and pairs.inputs.shape == (30, 3, 32, 32) and pairs.inputs.dtype == torch.uint8
    assert torch.equal(pairs.inputs[3:6][1:], pairs.targets[3:5])  # turn k edits turn k-1's target
    assert np.array_equal(pairs.inputs[3].permute(1, 2, 0).numpy(), np.asarray(chains[1].load_image()))
    assert pairs.instructions[3:6] == chains[1].instructions
    requests = [JudgeRequest(reference=pairs.inputs[i].permute(1, 2, 0).numpy(),
                             edited=(pairs.targets[i].permute(1, 2, 0).numpy(),),
                             instructions=(pairs.instructions[i],)) for i in range(len(pairs))]
    assert all(r.turns[0].value == 5.0 for r in SyntheticJudge().score(requests))
    inputs, targets, prompts = pairs.batch(torch.tensor([4, 0]))
    assert inputs.dtype == torch.float32 and inputs.max() <= 1 and prompts == [pairs.instructions[4], pairs.instructions[0]]


@dataclasses.dataclass(frozen=True)
class OracleCondition(EditCondition):
    target: torch.Tensor


class OracleEditor(Editor):
    """Carries out every edit exactly (parse, apply, render) except colour changes (output = input);
    sampling: v = (x - target) / sigma, which Euler integrates to the target."""

    pipeline_class = object
    resolution = 32
    device = torch.device("cpu")
    dtype = torch.float32

    def condition(self, prompts, reference_images):
        targets = []
        for prompt, image in zip(prompts, reference_images):
            edit, scene = parse_instruction(prompt), parse_image(image).scene
            try:
                out = scene if edit.task_type == BLIND_SPOT else apply_edit(scene, edit)
            except NotApplicable:
                out = scene
            targets.append(torch.from_numpy(render(out)).permute(2, 0, 1).float() / 255)
        return OracleCondition(torch.stack(targets))

    def initial_noise(self, batch_size, generator=None):
        return torch.randn(batch_size, 3, 32, 32, generator=generator)

    def sigmas(self, num_steps):
        return torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)

    def velocity(self, latents, sigma, cond):
        return (latents - cond.target) / sigma.view(-1, 1, 1, 1)

    def decode(self, latents):
        return latents.clamp(0, 1)


def test_per_turn_success_of_an_editor_with_a_blind_spot(chains):
    chains = chains[:24]
    result = evaluate_editor(OracleEditor(), chains, num_steps=2, batch_size=16)
    kinds = np.array([[t.task_type == BLIND_SPOT for t in c.turns] for c in chains])
    assert 0 < kinds.sum() < kinds.size
    assert result.num_chains == 24 and result.num_steps == 2
    assert result.clean == pytest.approx(tuple(1 - kinds.mean(axis=0)))  # every other turn succeeds
    assert result.clean_by_type[BLIND_SPOT] == 0.0
    assert all(v == 1.0 for k, v in result.clean_by_type.items() if k != BLIND_SPOT)
    # on its own outputs, turns 1..k all succeed exactly when none of them is a colour change
    assert result.cumulative == pytest.approx(tuple((np.cumsum(kinds, axis=1) == 0).mean(axis=0)))
    assert result.marginal[0] == result.cumulative[0] == result.clean[0]
    assert all(m >= c for m, c in zip(result.marginal, result.cumulative))
    assert result.single_turn == pytest.approx(1 - kinds.mean())
