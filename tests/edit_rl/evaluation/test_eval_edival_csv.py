"""EdiVal's instruction file -> chains (edit_rl/evaluation/edival_csv.py): the real file loads
completely (placeholder images made on the fly), own lists cumulate back to the CSV's, bad rows
are reported with their reasons."""
import ast
import csv
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from edit_rl.data import cumulative_lists, read_chains, write_chains
from edit_rl.evaluation import EdivalFileError, load_edival_chains
from edit_rl.evaluation.edival_csv import clean_instruction

SHARED = Path(__file__).resolve().parents[4] / "shared"  # ../shared beside the repository
EDIVAL_CSV = SHARED / "data" / "edival" / "oai_instruction_generation_output.csv"
HEADER = ("image_index,turns,task_type,instructions,format_instructions,bg_consistency,unchanged_objects,"
          "available_objects,all_objects")


def _rows() -> list[dict]:
    with EDIVAL_CSV.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _placeholders(folder: Path, indices, name: str = "{}_input_raw.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in indices:
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(folder / name.format(i))
    return folder


def test_the_whole_edival_file_loads_and_cumulates_back_to_its_lists(tmp_path):
    rows = _rows()
    images = _placeholders(tmp_path / "images", {int(r["image_index"]) for r in rows})
    result = load_edival_chains(EDIVAL_CSV, images)
    assert result.num_rows == 1716 and result.errors == ()
    assert len(result.chains) == 572 and all(c.num_turns == 3 for c in result.chains)
    assert len({c.chain_id for c in result.chains}) == 572
    by_key = {(int(r["image_index"]), int(r["turns"])): r for r in rows}
    for chain in result.chains:
        index = int(chain.chain_id.removeprefix("edival-"))
        assert chain.source == "edival" and chain.image_path == f"{index}_input_raw.png"
        assert chain.load_image(images).size == (8, 8)
        for t, (turn, spec) in enumerate(zip(chain.turns, cumulative_lists(chain.turns)), start=1):
            row = by_key[(index, t)]
            assert turn.task_type == ast.literal_eval(row["task_type"])[-1]
            assert spec.unchanged_objects == tuple(ast.literal_eval(row["unchanged_objects"]))
            assert spec.all_objects == tuple(ast.literal_eval(row["all_objects"]))
            assert spec.check_background == (row["bg_consistency"] == "True")
    types = Counter(t.task_type for c in result.chains for t in c.turns)
    assert len(types) == 9 and sum(types.values()) == 1716 and types["subject_add"] == 237

    chains = {c.chain_id: c for c in result.chains}
    # the doubled-quote quirk: '""Change the count ...""' in the file -> no wrapping quotes
    assert chains["edival-0"].turns[1].instruction == "Change the count of painted white leaf pattern to 4"
    assert not any(t.instruction.startswith('"') for c in result.chains for t in c.turns)
    assert sum('"' in t.instruction for c in result.chains for t in c.turns) > 0  # inner quotes kept
    # image 1 changes the background at turn 1: own flags False, then True (no further change)
    assert [t.bg_consistency for t in chains["edival-1"].turns] == [False, True, True]
    # round trip through our Parquet schema
    path = write_chains(result.chains, tmp_path / "edival.parquet")
    assert read_chains(path).chains == result.chains


def _write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return path


def _line(index: int, turn: int, types: list, instructions: list, bg: str = "True", unchanged: list = (),
          everything: list = ("cat",)) -> str:
    def q(value: list) -> str:
        return '"' + repr(list(value)).replace('"', '""') + '"'
    return ",".join([str(index), str(turn), q(types), q(instructions), q(instructions), bg, q(unchanged),
                     q(everything), q(everything)])


def test_unusable_rows_are_reported_with_row_and_reason(tmp_path):
    good = [_line(0, 1, ["color_alter"], ["Make the cat red"], unchanged=["dog"], everything=["cat", "dog"]),
            _line(0, 2, ["color_alter", "subject_remove"], ["Make the cat red", "Remove the dog"],
                  everything=["cat", "dog"])]
    lines = good + [
        _line(1, 1, ["color_alter"], ["Make it blue"]).replace("\"['color_alter']\"", "\"['color_alter'\""),  # row 2
        _line(1, 2, ["a", "b"], ["x", "y"]),  # row 3: its chain lost turn 1
        _line(2, 1, ["a", "b"], ["only one"]),  # row 4: 2 task types for turn 1
        _line(3, 1, ["background_change"], ["Change the background"], bg="False"),  # row 5
        _line(3, 2, ["background_change", "a"], ["Change the background", "x"], bg="True"),  # row 6: True again
        _line(4, 1, ["a"], ["y"]),  # row 7: no image for index 4
        _line(0, 2, ["color_alter", "x"], ["Make the cat red", "x"]),  # row 8: duplicate turn
        _line(5, 1, ["a"], ["z"], bg="maybe"),  # row 9
        _line(6, 1, ["a"], ["z"]) + ",extra",  # row 10: a cell more than the header
    ]
    images = _placeholders(tmp_path / "images", [0, 1, 2, 3, 5, 6])
    result = load_edival_chains(_write_csv(tmp_path / "bad.csv", lines), images)
    assert [c.chain_id for c in result.chains] == ["edival-0"] and result.num_rows == 11
    assert result.chains[0].turns[0].unchanged_objects == ("dog",)
    reasons = {e.row: e.reason for e in result.errors}
    assert sorted(reasons) == list(range(2, 11))
    assert "task_type is not a Python list literal" in reasons[2]
    assert "chain dropped" in reasons[3] and "turns [2]" in reasons[3]
    assert "task_type has 2 item(s), expected 1" in reasons[4]
    assert "bg_consistency is True after a background change" in reasons[6] and "chain dropped" in reasons[5]
    assert "no input image" in reasons[7] and "4_input_raw.png" in reasons[7]
    assert "duplicate of row 1" in reasons[8]
    assert "bg_consistency must be True or False" in reasons[9]
    assert "cell(s) more than the header" in reasons[10]


def test_image_names_and_unreadable_images(tmp_path):
    lines = [_line(i, 1, ["a"], ["x"]) for i in range(4)]
    folder = tmp_path / "images"
    _placeholders(folder, [0], "{}_input_raw.jpg")
    _placeholders(folder, [1], "{}.png")
    _placeholders(folder, [2], "{}.jpg")
    (folder / "3_input_raw.png").write_bytes(b"not an image")
    result = load_edival_chains(_write_csv(tmp_path / "names.csv", lines), folder)
    assert [c.image_path for c in result.chains] == ["0_input_raw.jpg", "1.png", "2.jpg"]
    assert len(result.errors) == 1 and "not a readable image" in result.errors[0].reason


def test_a_file_that_cannot_be_read_raises_a_clear_error(tmp_path):
    with pytest.raises(EdivalFileError, match="cannot read"):
        load_edival_chains(tmp_path / "missing.csv", tmp_path)
    (tmp_path / "cols.csv").write_text("image_index,turns,instructions\n0,1,\"['x']\"\n")
    with pytest.raises(EdivalFileError, match="missing column.*task_type"):
        load_edival_chains(tmp_path / "cols.csv", tmp_path)


def test_clean_instruction_strips_only_wrapping_quotes():
    assert clean_instruction(' "Change the count of nest to 4" ') == "Change the count of nest to 4"
    assert clean_instruction('Change the material of skin hand to "leather"') == \
        'Change the material of skin hand to "leather"'
    assert clean_instruction("Add text 'WORK' on the image") == "Add text 'WORK' on the image"


def test_a_chain_whose_last_turn_row_is_bad_is_dropped_not_kept_shorter(tmp_path):
    def chain(index: int) -> list[str]:
        types, instructions = ["a", "b", "c"], ["x", "y", "z"]
        return [_line(index, t, types[:t], instructions[:t]) for t in (1, 2, 3)]

    lines = chain(0) + chain(1)
    lines[2] = lines[2].replace("True", "maybe")  # row 2: image 0's turn 3
    result = load_edival_chains(_write_csv(tmp_path / "short.csv", lines), _placeholders(tmp_path / "images", [0, 1]))
    assert [c.chain_id for c in result.chains] == ["edival-1"] and result.chains[0].num_turns == 3
    reasons = {e.row: e.reason for e in result.errors}
    assert sorted(reasons) == [0, 1, 2]
    assert "bg_consistency must be True or False" in reasons[2]
    assert "chain dropped: turns [1, 2] are not 1..3" in reasons[0] and "chain dropped" in reasons[1]


def test_a_cell_longer_than_the_csv_modules_default_limit_costs_nothing(tmp_path):
    long = "x" * 200_000  # the csv module's default limit is 131,072 characters
    lines = [_line(0, 1, ["a"], ["x"]), _line(1, 1, ["a"], ["y"]).replace("\"['y']\"", f"\"['{long}']\"", 1)]
    result = load_edival_chains(_write_csv(tmp_path / "long.csv", lines), _placeholders(tmp_path / "images", [0, 1]))
    assert [c.chain_id for c in result.chains] == ["edival-0", "edival-1"] and result.errors == ()
    assert result.chains[1].turns[0].instruction == long


def test_a_truncated_image_or_a_decompression_bomb_drops_its_chain_at_load(tmp_path, monkeypatch):
    folder = _placeholders(tmp_path / "images", [0, 2])
    whole = (folder / "0_input_raw.png").read_bytes()
    (folder / "1_input_raw.png").write_bytes(whole[:len(whole) // 2])  # header intact, data cut
    lines = [_line(i, 1, ["a"], ["x"]) for i in range(3)]
    result = load_edival_chains(_write_csv(tmp_path / "images.csv", lines), folder)
    assert [c.chain_id for c in result.chains] == ["edival-0", "edival-2"]
    assert len(result.errors) == 1 and "image_index 1" in result.errors[0].reason
    assert "1_input_raw.png is not a readable image" in result.errors[0].reason
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # an 8 x 8 image is then a bomb (> 2 x 16 pixels)
    result = load_edival_chains(_write_csv(tmp_path / "images.csv", lines[:1]), folder)
    assert result.chains == () and "decompression bomb" in result.errors[0].reason
