"""The world's instruction language: edit -> text and text -> edit (exact inverses).

Templates (objects are "<size> <colour> <shape>", relations "to the left of", "to the right of",
"above", "below"; EdiVal's phrasing where it has one):

    color_alter        Change the color of the {object} to {colour}.
    subject_remove     Remove the {object}.
    subject_add        Add a {object} {relation} the {object}.
    subject_replace    Replace the {object} with a {object}.      (same size and colour)
    position_change    Move the {object} {relation} the {object}.
    background_change  Change the background to {background}.
    size_change        Make the {object} {size}.

:func:`parse_instruction` is case- and whitespace-insensitive and the final period is optional;
it is how the verifiable judge learns each turn's edit from the request's text alone.
"""
from __future__ import annotations

import re
from typing import Optional

from edit_rl.synthetic.edits import Add, BackgroundChange, ColorChange, Edit, Move, Remove, Replace, Resize
from edit_rl.synthetic.world import BACKGROUNDS, OBJECT_COLORS, RELATIONS, SHAPES, SIZES, ObjectDesc


def instruction_text(edit: Edit) -> str:
    """The instruction of an edit."""
    if isinstance(edit, ColorChange):
        return f"Change the color of the {edit.target.name} to {edit.color}."
    if isinstance(edit, Remove):
        return f"Remove the {edit.target.name}."
    if isinstance(edit, Add):
        return f"Add a {edit.new.name} {edit.relation} the {edit.anchor.name}."
    if isinstance(edit, Replace):
        new = ObjectDesc(edit.target.size, edit.target.color, edit.shape)
        return f"Replace the {edit.target.name} with a {new.name}."
    if isinstance(edit, Move):
        return f"Move the {edit.target.name} {edit.relation} the {edit.anchor.name}."
    if isinstance(edit, BackgroundChange):
        return f"Change the background to {edit.background}."
    if isinstance(edit, Resize):
        return f"Make the {edit.target.name} {edit.size}."
    raise TypeError(f"not an edit: {edit!r}")


def _alternatives(words) -> str:
    return "(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_OBJ = f"({_alternatives(SIZES)} {_alternatives(OBJECT_COLORS)} {_alternatives(SHAPES)})"
_REL = _alternatives(RELATIONS)
_PATTERNS = {
    "color_alter": re.compile(f"change the color of the {_OBJ} to {_alternatives(OBJECT_COLORS)}"),
    "subject_remove": re.compile(f"remove the {_OBJ}"),
    "subject_add": re.compile(f"add an? {_OBJ} {_REL} the {_OBJ}"),
    "subject_replace": re.compile(f"replace the {_OBJ} with an? {_OBJ}"),
    "position_change": re.compile(f"move the {_OBJ} {_REL} the {_OBJ}"),
    "background_change": re.compile(f"change the background to {_alternatives(BACKGROUNDS)}"),
    "size_change": re.compile(f"make the {_OBJ} {_alternatives(SIZES)}"),
}


def _desc(groups: tuple[str, ...], start: int) -> ObjectDesc:
    """The ObjectDesc of an _OBJ group whose whole-match group is at ``start``."""
    return ObjectDesc(groups[start + 1], groups[start + 2], groups[start + 3])


def parse_instruction(text: str) -> Optional[Edit]:
    """The edit an instruction asks for, or None if the text is not in the world's language
    (including a replacement that changes more than the shape)."""
    normal = " ".join(text.lower().split()).rstrip(".").strip()
    for task_type, pattern in _PATTERNS.items():
        match = pattern.fullmatch(normal)
        if match is None:
            continue
        g = match.groups()
        if task_type == "color_alter":
            return ColorChange(_desc(g, 0), g[4])
        if task_type == "subject_remove":
            return Remove(_desc(g, 0))
        if task_type == "subject_add":
            return Add(_desc(g, 0), g[4], _desc(g, 5))
        if task_type == "subject_replace":
            old, new = _desc(g, 0), _desc(g, 4)
            if (old.size, old.color) != (new.size, new.color):
                return None
            return Replace(old, new.shape)
        if task_type == "position_change":
            return Move(_desc(g, 0), g[4], _desc(g, 5))
        if task_type == "background_change":
            return BackgroundChange(g[0])
        return Resize(_desc(g, 0), g[4])
    return None
