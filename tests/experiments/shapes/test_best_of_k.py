"""Best-of-k headroom: the pick rule by hand, k = 1 against the editor evaluation, the invariants of a
k > 1 path, the LoRA it loads, and the command line, on the shipped shapes base editor."""
import json

import numpy as np
import pytest
import torch

from experiments.shapes.best_of_k import best_of_k_path, load_editor_with_lora, main, pick_first_success
from edit_rl.config import load_config
from edit_rl.synthetic.editor_eval import evaluate_editor
from edit_rl.synthetic.splits import heldout_split
from edit_rl.synthetic.turn_pairs import turn_pairs
from edit_rl.synthetic.world import Geometry

CONFIG = "experiments/shapes/configs/shapes_nft.yaml"


def test_pick_first_success_takes_the_first_successful_draw_else_the_first():
    successes = np.array([[False, True, True], [False, False, False], [True, False, True], [False, False, True]])
    index, any_success = pick_first_success(successes)
    assert index.tolist() == [1, 0, 0, 2]
    assert any_success.tolist() == [True, False, True, True]


@pytest.fixture(scope="module")
def world():
    torch.set_num_threads(1)
    cfg = load_config(CONFIG, [])
    chains = heldout_split(cfg.data, 12)
    pairs = turn_pairs(chains, Geometry(cfg.data.synthetic_image_size))
    inputs = pairs.inputs[[3 * c for c in range(len(chains))]].float() / 255
    return cfg, chains, inputs, load_editor_with_lora(cfg, None)


def test_k1_path_is_the_plain_multi_turn_evaluation(world):
    cfg, chains, inputs, editor = world
    result = best_of_k_path(editor, chains, inputs, k=1, seed=3, num_steps=8, batch_size=8)
    reference = evaluate_editor(editor, chains, num_steps=8, seed=3, batch_size=8)
    assert [t.edival_if for t in result.turns] == pytest.approx([100 * v for v in reference.cumulative])
    assert [t.pass_at_1 for t in result.turns] == pytest.approx([100 * v for v in reference.marginal])
    assert [t.pass_at_k for t in result.turns] == pytest.approx([100 * v for v in reference.marginal])
    assert all(t.mixed == 0 for t in result.turns)
    assert all(t.cc is not None and 0 < t.cc <= 100 for t in result.turns)
    assert result.turns[0].overall == pytest.approx((result.turns[0].edival_if * result.turns[0].cc) ** 0.5)


def test_best_of_k_path_keeps_a_success_whenever_a_draw_has_one(world):
    cfg, chains, inputs, editor = world
    result = best_of_k_path(editor, chains, inputs, k=3, seed=5, num_steps=8, batch_size=8)
    first = result.turns[0]
    assert first.edival_if == pytest.approx(first.pass_at_k)  # turn 1 passes iff some draw passes
    assert first.pass_at_k > 0  # the shipped base succeeds on some of 12 chains
    for previous, turn in zip(result.turns, result.turns[1:]):
        assert turn.edival_if <= min(previous.edival_if, turn.pass_at_k) + 1e-9
    for turn in result.turns:
        assert turn.pass_at_1 <= turn.pass_at_k
        assert turn.mixed <= turn.pass_at_k
        # each rate is a multiple of one draw of one chain
        assert turn.pass_at_1 * 3 * 12 / 100 == pytest.approx(round(turn.pass_at_1 * 3 * 12 / 100))


def test_load_editor_with_lora_applies_the_saved_adapter(world, tmp_path):
    from edit_rl.editors.lora import add_lora, save_lora_weights
    from edit_rl.editors.lora_targets import lora_config_for

    cfg, chains, inputs, _ = world
    trained = load_editor_with_lora(cfg, None)
    add_lora(trained.transformer, lora_config_for(trained, cfg.lora), with_old=False)
    generator = torch.Generator().manual_seed(0)
    for name, p in trained.transformer.named_parameters():
        if "lora_B" in name:
            p.data = 0.05 * torch.randn(p.shape, generator=generator)
    save_lora_weights(trained, tmp_path)

    base = load_editor_with_lora(cfg, None)
    loaded = load_editor_with_lora(cfg, tmp_path)
    cond = trained.condition([chains[0].instructions[0]], inputs[:1])
    x = trained.initial_noise(1, torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.5])
    with torch.no_grad():
        v_trained, v_loaded = trained.velocity(x, sigma, cond), loaded.velocity(x, sigma, cond)
        v_base = base.velocity(x, sigma, base.condition([chains[0].instructions[0]], inputs[:1]))
    assert torch.allclose(v_loaded, v_trained, atol=1e-6)
    assert (v_loaded - v_base).abs().max() > 1e-3


@pytest.mark.slow
def test_command_line_writes_every_k(tmp_path):
    out = tmp_path / "bok.json"
    results = main(["--config", CONFIG, "--chains", "4", "--k", "1,2", "--seed", "9", "--threads", "1",
                    "--json", str(out)])
    saved = json.loads(out.read_text())
    assert [r["k"] for r in saved["results"]] == [1, 2] == [r.k for r in results]
    assert all(len(r["turns"]) == 3 and r["num_chains"] == 4 for r in saved["results"])


def test_k_must_be_positive():
    with pytest.raises(SystemExit):
        main(["--k", "0"])
