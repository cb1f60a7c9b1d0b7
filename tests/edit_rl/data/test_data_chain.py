"""ChainTurn / EditChain records: validation and image loading."""
import numpy as np
import pytest
from PIL import Image

from edit_rl.data import ChainTurn, EditChain, encode_png


def _turn(**overrides) -> ChainTurn:
    fields = dict(instruction="Remove the large red circle.", task_type="subject_remove",
                  unchanged_objects=["small blue square"], all_objects=["large red circle", "small blue square"],
                  bg_consistency=True)
    fields.update(overrides)
    return ChainTurn(**fields)


def test_turn_lists_become_tuples_and_bad_fields_are_refused():
    turn = _turn()
    assert turn.unchanged_objects == ("small blue square",) and turn.target_state is None
    with pytest.raises(ValueError, match="instruction"):
        _turn(instruction="  ")
    with pytest.raises(ValueError, match="unchanged_objects"):
        _turn(unchanged_objects="small blue square")
    with pytest.raises(ValueError, match="all_objects"):
        _turn(all_objects=["x", 3])
    with pytest.raises(ValueError, match="bg_consistency"):
        _turn(bg_consistency=1)


def test_chain_needs_turns_an_image_and_png_bytes():
    png = encode_png(Image.new("RGB", (4, 4)))
    chain = EditChain("c0", [_turn()], None, png, "test")
    assert chain.turns == (_turn(),) and chain.num_turns == 1
    assert chain.instructions == ("Remove the large red circle.",)
    with pytest.raises(ValueError, match="neither image_path nor image_png"):
        EditChain("c1", (_turn(),), None, None, "test")
    with pytest.raises(ValueError, match="at least one turn"):
        EditChain("c2", (), "a.png", None, "test")
    with pytest.raises(ValueError, match="not PNG"):
        EditChain("c3", (_turn(),), None, b"GIF89a....", "test")


def test_load_image_from_png_bytes_and_from_a_relative_path(tmp_path):
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    image = Image.fromarray(pixels)
    inline = EditChain("inline", (_turn(),), None, encode_png(image), "test")
    assert np.array_equal(np.asarray(inline.load_image()), pixels)
    image.save(tmp_path / "ref.png")
    on_disk = EditChain("disk", (_turn(),), "ref.png", None, "edival")
    loaded = on_disk.load_image(image_dir=tmp_path)
    assert loaded.mode == "RGB" and np.array_equal(np.asarray(loaded), pixels)
    absolute = EditChain("abs", (_turn(),), str(tmp_path / "ref.png"), None, "edival")
    assert np.array_equal(np.asarray(absolute.load_image()), pixels)


def test_missing_image_error_names_the_chain_and_the_path(tmp_path):
    chain = EditChain("edival-17", (_turn(),), "17.png", None, "edival")
    with pytest.raises(FileNotFoundError) as err:
        chain.load_image(image_dir=tmp_path)
    assert "edival-17" in str(err.value) and str(tmp_path / "17.png") in str(err.value)
    with pytest.raises(FileNotFoundError, match="no image_dir given"):
        chain.load_image()
