"""Parquet round trip, the documented schema, and the malformed-row report."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from edit_rl.data import CHAIN_SCHEMA, ChainDataError, ChainTurn, EditChain, encode_png, read_chains, write_chains

PNG = encode_png(Image.new("RGB", (8, 8), (1, 2, 3)))


def _chain(chain_id: str, png: bool = True) -> EditChain:
    turns = (
        ChainTurn("Change the color of the large red circle to blue.", "color_alter", ("small cyan square",),
                  ("large red circle", "small cyan square", "large blue circle"), True,
                  target_state='{"background":"white","objects":[]}'),
        ChainTurn("Change the background to black.", "background_change", ("large blue circle",),
                  ("large blue circle",), False),
        ChainTurn("Remove the large blue circle.", "subject_remove", (), ("large blue circle",), True),
    )
    return EditChain(chain_id, turns, None if png else f"{chain_id}.png", PNG if png else None,
                     "synthetic" if png else "edival")


def test_round_trip_keeps_every_field_and_writes_the_documented_schema(tmp_path):
    chains = [_chain("a"), _chain("b", png=False), _chain("c")]
    path = write_chains(chains, tmp_path / "sub" / "chains.parquet")
    assert pq.read_schema(path).equals(CHAIN_SCHEMA)
    result = read_chains(path)
    assert result.chains == tuple(chains) and result.errors == () and result.num_rows == 3
    assert result.chains[0].turns[0].target_state == '{"background":"white","objects":[]}'
    assert result.chains[1].image_png is None and result.chains[1].image_path == "b.png"


def test_write_refuses_duplicate_ids(tmp_path):
    with pytest.raises(ValueError, match="duplicate chain_id 'a'"):
        write_chains([_chain("a"), _chain("a")], tmp_path / "x.parquet")


def _good_turn(**overrides):
    turn = {"instruction": "Remove the large red circle.", "task_type": "subject_remove",
            "unchanged_objects": [], "all_objects": ["large red circle"], "bg_consistency": True,
            "target_state": None}
    turn.update(overrides)
    return turn


def test_malformed_rows_are_reported_with_index_and_reason(tmp_path):
    rows = [
        {"chain_id": "ok-0", "source": "s", "image_path": "0.png", "image_png": None, "turns": [_good_turn()]},
        {"chain_id": "no-turns", "source": "s", "image_path": "1.png", "image_png": None, "turns": []},
        {"chain_id": "null-turns", "source": "s", "image_path": "2.png", "image_png": None, "turns": None},
        {"chain_id": "no-instr", "source": "s", "image_path": "3.png", "image_png": None,
         "turns": [_good_turn(), _good_turn(instruction=None)]},
        {"chain_id": "no-image", "source": "s", "image_path": None, "image_png": None, "turns": [_good_turn()]},
        {"chain_id": "ok-0", "source": "s", "image_path": "5.png", "image_png": None, "turns": [_good_turn()]},
        {"chain_id": None, "source": "s", "image_path": "6.png", "image_png": None, "turns": [_good_turn()]},
        {"chain_id": "bad-png", "source": "s", "image_path": None, "image_png": b"not a png", "turns": [_good_turn()]},
        {"chain_id": "ok-8", "source": "s", "image_path": None, "image_png": PNG, "turns": [_good_turn()]},
    ]
    loose = CHAIN_SCHEMA
    for i, name in enumerate(loose.names):  # the writer's schema, every field nullable
        loose = loose.set(i, loose.field(name).with_nullable(True))
    loose_turn = pa.list_(pa.struct([f.with_nullable(True) for f in loose.field("turns").type.value_type]))
    loose = loose.set(loose.get_field_index("turns"), pa.field("turns", loose_turn))
    path = tmp_path / "mixed.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=loose), path)

    result = read_chains(path)
    assert [c.chain_id for c in result.chains] == ["ok-0", "ok-8"]
    reasons = {e.row: e.reason for e in result.errors}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert reasons[1] == "no turns"
    assert reasons[2] == "turns is missing or not a list"
    assert reasons[3] == "turn 1 lacks instruction"
    assert "neither image_path nor image_png" in reasons[4]
    assert reasons[5] == "duplicate chain_id 'ok-0' (first at row 0)"
    assert "chain_id must be a non-empty string" in reasons[6]
    assert "not PNG data" in reasons[7]


def test_only_unusable_files_raise(tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"chain_id": ["a"], "source": ["s"], "turns": pa.array([[]], pa.list_(pa.struct(
        [pa.field("instruction", pa.string())])))}), bad)
    with pytest.raises(ChainDataError, match=r"no usable chain in 1 row\(s\) \(row 0: no turns\)"):
        read_chains(bad)
    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"chain_id": ["a"], "source": ["s"]}), missing)
    with pytest.raises(ChainDataError, match=r"missing column\(s\) \['turns'\]"):
        read_chains(missing)
    with pytest.raises(ChainDataError, match="cannot read"):
        read_chains(tmp_path / "absent.parquet")


def test_a_uri_is_read_through_pyarrows_filesystems(tmp_path):
    # The cluster's way to data that does not travel with the job: a URI (file:// here, s3:// there).
    chains = [_chain("a"), _chain("b")]
    path = write_chains(chains, tmp_path / "chains.parquet")
    result = read_chains(path.as_uri())
    assert result.chains == tuple(chains) and result.path == path.as_uri()
