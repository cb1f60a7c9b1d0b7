"""Chain turns -> EdiVal-CC TurnSpecs: own lists (consecutive) and cumulated lists (reference)."""
import pytest

from edit_rl.consistency import TurnSpec
from edit_rl.data import ChainTurn, turn_specs


def _edival_image_1():
    """EdiVal's instruction file, image_index 1, with each turn's own lists (relative to the image
    it edits). Cumulating them must give the CSV's cumulative columns."""
    return (
        ChainTurn("Change the background to forest, remain the brown fur bear unchanged", "background_change",
                  ("brown fur bear",), ("brown fur bear", "yellow leaves"), False),
        ChainTurn("Add fish on the below of brown fur bear", "subject_add",
                  ("brown fur bear",), ("brown fur bear", "yellow leaves", "fish"), True),
        ChainTurn("Change the material of fish to glass", "material_alter",
                  ("brown fur bear",), ("brown fur bear", "fish", "glass fish"), True),
    )


def _edival_image_0():
    return (
        ChainTurn("Add bench on the left of painted white leaf pattern", "subject_add",
                  ("painted white leaf pattern",), ("painted white leaf pattern", "bench"), True),
        ChainTurn("Change the count of painted white leaf pattern to 4", "count_change",
                  ("bench",), ("painted white leaf pattern", "bench"), True),
        ChainTurn("Change the background to park", "background_change",
                  ("painted white leaf pattern", "bench"), ("painted white leaf pattern", "bench"), False),
    )


def test_consecutive_uses_each_turns_own_lists():
    turns = _edival_image_0()
    assert turn_specs(turns, "consecutive") == tuple(
        TurnSpec(t.unchanged_objects, t.all_objects, t.bg_consistency) for t in turns)


def test_reference_cumulates_like_the_edival_csv():
    # CSV rows (image_index 1): unchanged_objects, all_objects, bg_consistency per turn.
    assert turn_specs(_edival_image_1(), "reference") == (
        TurnSpec(("brown fur bear",), ("brown fur bear", "yellow leaves"), False),
        TurnSpec(("brown fur bear",), ("brown fur bear", "yellow leaves", "fish"), False),
        TurnSpec(("brown fur bear",), ("brown fur bear", "yellow leaves", "fish", "glass fish"), False),
    )
    # image_index 0: the count change empties the unchanged list; the background change clears the flag.
    assert turn_specs(_edival_image_0(), "reference") == (
        TurnSpec(("painted white leaf pattern",), ("painted white leaf pattern", "bench"), True),
        TurnSpec((), ("painted white leaf pattern", "bench"), True),
        TurnSpec((), ("painted white leaf pattern", "bench"), False),
    )


def test_unknown_pairing_is_refused():
    with pytest.raises(ValueError, match="pairing"):
        turn_specs(_edival_image_0(), "pairwise")
