"""The edits of the synthetic world, applied to symbolic scenes.

Seven kinds, named by EdiVal's task types where one exists: ``color_alter``,
``subject_remove``, ``subject_add`` (relative to an existing object), ``subject_replace``
(another shape, same colour and size), ``position_change`` (move next to another object),
``background_change`` and ``size_change``. Objects are referred to by their current name
(:class:`ObjectDesc`), so an edit that follows a failed one may find no such object:
:func:`apply_edit` then raises :class:`NotApplicable`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from edit_rl.synthetic.world import RELATIONS, Cell, ObjectDesc, Scene, SceneObject, in_grid


class NotApplicable(ValueError):
    """The edit cannot be carried out on this scene (its object is missing or ambiguous, the
    destination cell is occupied or off the grid)."""


@dataclass(frozen=True)
class ColorChange:
    target: ObjectDesc
    color: str
    task_type = "color_alter"


@dataclass(frozen=True)
class Remove:
    target: ObjectDesc
    task_type = "subject_remove"


@dataclass(frozen=True)
class Add:
    new: ObjectDesc
    relation: str
    anchor: ObjectDesc
    task_type = "subject_add"


@dataclass(frozen=True)
class Replace:
    target: ObjectDesc
    shape: str
    task_type = "subject_replace"


@dataclass(frozen=True)
class Move:
    target: ObjectDesc
    relation: str
    anchor: ObjectDesc
    task_type = "position_change"


@dataclass(frozen=True)
class BackgroundChange:
    background: str
    task_type = "background_change"


@dataclass(frozen=True)
class Resize:
    target: ObjectDesc
    size: str
    task_type = "size_change"


Edit = Union[ColorChange, Remove, Add, Replace, Move, BackgroundChange, Resize]
EDIT_TYPES: tuple[str, ...] = ("color_alter", "subject_remove", "subject_add", "subject_replace",
                               "position_change", "background_change", "size_change")


def find_one(scene: Scene, desc: ObjectDesc) -> SceneObject:
    """The one object named ``desc``; NotApplicable if there is none or more than one."""
    found = scene.find(desc)
    if len(found) != 1:
        raise NotApplicable(f"{'no' if not found else len(found)} {desc.name} in the scene")
    return found[0]


def neighbour(cell: Cell, relation: str) -> Cell:
    dy, dx = RELATIONS[relation]
    return (cell[0] + dy, cell[1] + dx)


def _free_cell(scene: Scene, cell: Cell, what: str) -> Cell:
    if not in_grid(cell):
        raise NotApplicable(f"{what} is off the grid")
    if scene.at(cell):
        raise NotApplicable(f"{what} is occupied")
    return cell


def destination(scene: Scene, edit: Union[Add, Move]) -> Cell:
    """The cell an add or a move puts its object in: next to the anchor, which must exist once;
    the cell must be on the grid and free."""
    anchor = find_one(scene, edit.anchor)
    return _free_cell(scene, neighbour(anchor.cell, edit.relation), f"the cell {edit.relation} the {edit.anchor.name}")


def edited_cells(scene: Scene, edit: Edit) -> tuple[Cell, ...]:
    """The cells an edit of ``scene`` changes (its "region"): the target's cell; an add's
    destination; a move's source and destination; none for a background change."""
    if isinstance(edit, BackgroundChange):
        return ()
    if isinstance(edit, Add):
        return (destination(scene, edit),)
    target = find_one(scene, edit.target)
    if isinstance(edit, Move):
        if edit.target == edit.anchor:
            raise NotApplicable("an object cannot move next to itself")
        return (target.cell, destination(scene, edit))
    return (target.cell,)


def apply_edit(scene: Scene, edit: Edit) -> Scene:
    """The scene after the edit (NotApplicable if it cannot be carried out)."""
    if isinstance(edit, BackgroundChange):
        return Scene(edit.background, scene.objects)
    if isinstance(edit, Add):
        cell = destination(scene, edit)
        return Scene(scene.background, scene.objects + (SceneObject(cell[0], cell[1], edit.new),))
    target = find_one(scene, edit.target)
    rest = tuple(o for o in scene.objects if o != target)
    if isinstance(edit, Remove):
        return Scene(scene.background, rest)
    if isinstance(edit, Move):
        (cell,) = edited_cells(scene, edit)[1:]
        changed = target.at(cell)
    elif isinstance(edit, ColorChange):
        changed = target.with_desc(ObjectDesc(target.desc.size, edit.color, target.desc.shape))
    elif isinstance(edit, Replace):
        changed = target.with_desc(ObjectDesc(target.desc.size, target.desc.color, edit.shape))
    elif isinstance(edit, Resize):
        changed = target.with_desc(ObjectDesc(edit.size, target.desc.color, target.desc.shape))
    else:
        raise TypeError(f"not an edit: {edit!r}")
    return Scene(scene.background, rest + (changed,))


def turn_object_lists(before: Scene, after: Scene, edit: Edit) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A turn's own EdiVal-CC lists (edit_rl.data.chain): the objects of ``before`` outside the
    edited cells (unchanged), and the names in ``before`` then the new ones in ``after`` (all)."""
    cells = set(edited_cells(before, edit))
    unchanged = tuple(o.name for o in before.objects if o.cell not in cells)
    everything = tuple(dict.fromkeys(before.names + after.names))
    return unchanged, everything
