"""Placement errors of adds and moves: the anatomy of rendered outputs by hand, the summary, and the
command line on the shipped base editor."""
import json

import numpy as np
import pytest
import torch

from experiments.shapes.placement_errors import Attempt, attempt_anatomy, main, summarize
from edit_rl.synthetic.edits import Add, Move, destination
from edit_rl.synthetic.generate import generate_chain
from edit_rl.synthetic.grammar import instruction_text
from edit_rl.synthetic.render import render
from edit_rl.synthetic.world import ObjectDesc, Scene, SceneObject

BEFORE = Scene("white", (SceneObject(1, 1, ObjectDesc("large", "red", "square")),
                         SceneObject(2, 2, ObjectDesc("small", "blue", "circle"))))
NEW = ObjectDesc("large", "green", "triangle")
ADD = Add(NEW, "to the left of", BEFORE.objects[0].desc)  # destination (1, 0)
MOVE = Move(BEFORE.objects[1].desc, "above", BEFORE.objects[0].desc)  # (2, 2) -> (0, 1)


def with_objects(*extra: SceneObject, without: tuple = ()) -> np.ndarray:
    return render(Scene("white", tuple(o for o in BEFORE.objects if o not in without) + extra))


def test_a_right_add_and_a_right_move_score_5_in_one_place():
    assert destination(BEFORE, ADD) == (1, 0) and destination(BEFORE, MOVE) == (0, 1)
    right_add = attempt_anatomy(render(BEFORE), with_objects(SceneObject(1, 0, NEW)), instruction_text(ADD))
    assert right_add == Attempt("subject_add", 5, True, True, True, True, True, 1)
    moved = SceneObject(0, 1, BEFORE.objects[1].desc)
    right_move = attempt_anatomy(render(BEFORE), with_objects(moved, without=(BEFORE.objects[1],)), instruction_text(MOVE))
    assert right_move == Attempt("position_change", 5, True, True, True, True, True, 1)


def test_wrong_cell_wrong_shape_spread_and_no_attempt_are_told_apart():
    instruction = instruction_text(ADD)
    wrong_cell = attempt_anatomy(render(BEFORE), with_objects(SceneObject(0, 0, NEW)), instruction)
    assert wrong_cell == Attempt("subject_add", 2, True, False, False, False, True, 1)  # (0, 0): diagonal
    wrong_side = attempt_anatomy(render(BEFORE), with_objects(SceneObject(0, 1, NEW)), instruction)  # above, not left
    assert (wrong_side.beside_anchor, wrong_side.right_cell, wrong_side.score) == (True, False, 2)
    wrong_shape = attempt_anatomy(render(BEFORE), with_objects(SceneObject(1, 0, ObjectDesc("large", "green", "circle"))),
                                  instruction)
    assert (wrong_shape.attempted, wrong_shape.right_cell, wrong_shape.right_object) == (True, True, False)
    spread = attempt_anatomy(render(BEFORE), with_objects(SceneObject(1, 0, NEW), SceneObject(2, 0, NEW)), instruction)
    assert (spread.right_cell, spread.right_object, spread.colour_cells) == (True, True, 2)
    assert spread.score < 5  # an extra object outside the region: collateral change
    unchanged = attempt_anatomy(render(BEFORE), render(BEFORE), instruction)
    assert unchanged == Attempt("subject_add", 1, False, False, False, False, True, 0)
    # a move that copies instead of moving: the source cell (part of the region) still holds the object
    moved = SceneObject(0, 1, BEFORE.objects[1].desc)
    copied = attempt_anatomy(render(BEFORE), with_objects(moved), instruction_text(MOVE))
    assert (copied.attempted, copied.right_object, copied.colour_cells, copied.score) == (True, True, 1, 2)


def test_junk_of_the_new_colour_counts_its_cell_and_makes_the_output_unclean():
    output = with_objects(SceneObject(1, 0, NEW)).copy()
    output[30, 30] = (40, 170, 60)  # one green pixel in the bottom-right cell, beside the blue circle
    output[30, 29] = (40, 170, 60)
    output[29, 30] = (40, 170, 60)
    attempt = attempt_anatomy(render(BEFORE), output, instruction_text(ADD))
    assert (attempt.right_object, attempt.clean, attempt.colour_cells, attempt.score) == (True, False, 2, 4)


def test_other_kinds_are_refused():
    chain = generate_chain(0, edit_types=("color_alter",))
    with pytest.raises(ValueError, match="not an add or move"):
        attempt_anatomy(render(BEFORE), render(BEFORE), chain.turns[0].instruction)


def test_summary_rates_by_hand():
    attempts = [Attempt("subject_add", 5, True, True, True, True, True, 1),
                Attempt("subject_add", 2, True, True, False, False, False, 3),
                Attempt("subject_add", 1, False, False, False, False, True, 0),
                Attempt("position_change", 1, False, False, False, False, False, 0)]
    add, move = sorted(summarize(attempts), key=lambda r: r.kind != "subject_add")
    assert (add.turns, add.success, add.attempted, add.clean) == (3, pytest.approx(1 / 3), pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert add.beside_anchor_of_attempted == 1.0
    assert (add.right_cell_of_attempted, add.right_object_of_attempted, add.colour_cells_of_attempted) == (0.5, 0.5, 2.0)
    assert move.turns == 1 and move.attempted == 0.0 and np.isnan(move.right_cell_of_attempted)


def test_command_line_on_the_shipped_base(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        rows = main(["--chains", "30", "--turns", "6", "--steps", "2", "--threads", "1", "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(threads)
    assert sum(r.turns for r in rows) == 6 and {r.kind for r in rows} <= {"subject_add", "position_change"}
    assert "| kind | turns | success %" in capsys.readouterr().out
    assert [r["turns"] for r in json.loads((tmp_path / "r.json").read_text())] == [r.turns for r in rows]
    with pytest.raises(SystemExit):
        main(["--kinds", "color_alter"])
