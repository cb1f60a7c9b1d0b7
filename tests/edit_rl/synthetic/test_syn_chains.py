"""Instruction chains: grammar, context consistency, per-turn lists, splits, the training curriculum
and the CLI."""
import re
from collections import Counter

import pytest

from edit_rl.config import ConfigError
from edit_rl.config.schema import DataConfig
from edit_rl.data import read_chains
from edit_rl.data.sources import load_training_chains
from edit_rl.synthetic import (
    EDIT_TYPES,
    BackgroundChange,
    ObjectDesc,
    Replace,
    Scene,
    apply_edit,
    edited_cells,
    generate_chain,
    instruction_text,
    make_splits,
    parse_image,
    parse_instruction,
    split_seed,
)
from edit_rl.synthetic.generate import named_objects
from edit_rl.synthetic.make_chains import main as make_chains_main
from edit_rl.synthetic.splits import chain_key, heldout_split, make_split

CHAINS = [generate_chain(seed) for seed in range(300)]


def test_generation_is_deterministic():
    again = generate_chain(17)
    assert again == CHAINS[17] and again.chain_id == "synthetic-17" and again.source == "synthetic"
    assert generate_chain(18) != again


def test_grammar_round_trips_and_rejects_other_text():
    for chain in CHAINS[:100]:
        for turn in chain.turns:
            edit = parse_instruction(turn.instruction)
            assert edit is not None and instruction_text(edit) == turn.instruction
            assert edit.task_type == turn.task_type
    circle = ObjectDesc("large", "red", "circle")
    assert parse_instruction("  REPLACE the large red circle   with a large red square") == Replace(circle, "square")
    assert parse_instruction("Replace the large red circle with a small red square.") is None  # size changed too
    assert parse_instruction("Remove the large pink circle.") is None
    assert parse_instruction("Make it pop.") is None


def test_chains_have_three_turns_and_cover_every_edit_type():
    counts = Counter(t.task_type for c in CHAINS for t in c.turns)
    assert set(counts) == set(EDIT_TYPES) and len(EDIT_TYPES) == 7
    assert min(counts.values()) > 0.1 * len(CHAINS)
    assert all(c.num_turns == 3 for c in CHAINS)
    assert all(len({t.task_type for t in c.turns}) == 3 for c in CHAINS)  # no kind twice in a chain


def test_chains_are_context_consistent():
    """Replaying the instructions from the parsed reference gives every stored target; each
    instruction names objects as the previous turns left them; later turns often name an object
    that only exists because of an earlier turn (so a failed turn dooms them)."""
    depends = 0
    for chain in CHAINS:
        scene = parse_image(chain.load_image()).scene
        initial_names = set(scene.names)
        chain_depends = False
        for k, turn in enumerate(chain.turns):
            edit = parse_instruction(turn.instruction)
            for desc in named_objects(edit):
                assert len(scene.find(desc)) == 1, (chain.chain_id, k, desc)
                chain_depends |= k > 0 and desc.name not in initial_names
            after = apply_edit(scene, edit)
            assert after == Scene.from_json(turn.target_state)
            cells = set(edited_cells(scene, edit))
            assert turn.unchanged_objects == tuple(o.name for o in scene.objects if o.cell not in cells)
            assert set(turn.all_objects) == set(scene.names) | set(after.names)
            assert turn.bg_consistency == (not isinstance(edit, BackgroundChange))
            scene = after
        depends += chain_depends
    assert depends > 0.5 * len(CHAINS)


def test_train_and_heldout_are_disjoint():
    assert {split_seed("train", i) for i in range(1000)}.isdisjoint(split_seed("heldout", i) for i in range(1000))
    train, heldout = make_splits(120, 40)
    assert len(train) == 120 and len(heldout) == 40
    assert {c.chain_id for c in train}.isdisjoint(c.chain_id for c in heldout)
    assert {(c.image_png, c.instructions) for c in train}.isdisjoint((c.image_png, c.instructions) for c in heldout)
    assert train[:5] == make_splits(5, 1)[0]


def test_make_chains_cli_writes_readable_parquet(tmp_path, capsys):
    train_path, heldout_path = make_chains_main(["--out", str(tmp_path), "--train", "30", "--heldout", "10",
                                                 "--image-size", "48"])
    train, heldout = read_chains(train_path), read_chains(heldout_path)
    assert (len(train.chains), len(heldout.chains), train.errors, heldout.errors) == (30, 10, (), ())
    assert train.chains[0].load_image().size == (48, 48)
    assert all(t.target_state for c in train.chains for t in c.turns)
    assert "30 chains" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        make_chains_main(["--out", str(tmp_path), "--train", "3", "--heldout", "1", "--image-size", "100"])


def test_training_curriculum_draws_only_the_named_kinds_and_the_held_out_set_stays():
    kinds = ["color_alter", "subject_remove", "background_change"]
    data = DataConfig(synthetic_train_chains=30, synthetic_image_size=32, synthetic_edit_types=kinds)
    train = load_training_chains(data)
    assert len(train) == 30 and {t.task_type for c in train for t in c.turns} == set(kinds)
    # the held-out chains are the all-kinds held-out split, and none of them is a training chain
    heldout = heldout_split(data, 20)
    assert heldout == make_splits(30, 20)[1]
    assert not {chain_key(c) for c in heldout} & {chain_key(c) for c in train}
    assert len({t.task_type for c in heldout for t in c.turns}) == 7
    # all kinds by default: the same chains as before the option existed
    assert load_training_chains(DataConfig(synthetic_train_chains=30)) == make_split("train", 30)


@pytest.mark.parametrize("kinds, message", [(["colour_alter"], "unknown kinds ['colour_alter']"),
                                            ([], "at least one kind"),
                                            (["size_change", "size_change"], "each once")])
def test_training_curriculum_rejects_bad_kinds(kinds, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DataConfig(synthetic_edit_types=kinds).validate()
