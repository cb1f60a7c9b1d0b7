"""The verifiable instruction-following rubric: one turn, from the parsed input and output images.

The expected output E is the instruction's edit applied to the parsed INPUT image (the image the
turn edited: the reference for turn 1, the policy's own previous output after that). The
edit's region is the cells it changes (:func:`edit_rl.synthetic.edits.edited_cells`; none for a
background change, whose "region" is the background). With O the parsed output:

* edit done  = O equals E on the region (for a background change: O's background is E's);
* rest kept  = O equals E everywhere else (objects outside the region; the background unless
  the edit changes it);
* clean      = O has at most ``JUNK_TOLERANCE_PIXELS`` junk pixels (stray or broken components).

Score (1-5 Likert, MT-EditFlow's scale):

    5  edit done, rest kept, clean                       (success; the only passing score)
    4  edit done, rest kept, but junk pixels              ("right edit, dirty image")
    3  edit done, but collateral damage: another object or the background changed,
       appeared or vanished (junk or not)
    2  edit attempted but wrong (:func:`partial_attempt`): the target changed the wrong way
       (wrong colour, shape lost, wrong shape, wrong size), an add or move landed on the
       wrong cell or with wrong attributes, a removal left a remnant, the background took
       another colour than asked
    1  no attempt: the output leaves the region as the input had it (e.g. an unchanged
       output); or the instruction cannot be carried out on the input (its object is
       missing, as when an earlier turn failed, or the destination is taken)

Binary success = score 5.
"""
from __future__ import annotations

from dataclasses import dataclass

from edit_rl.synthetic.edits import (
    Add,
    BackgroundChange,
    ColorChange,
    Edit,
    Move,
    NotApplicable,
    Remove,
    Replace,
    Resize,
    apply_edit,
    edited_cells,
    find_one,
)
from edit_rl.synthetic.parse import ParsedScene
from edit_rl.synthetic.world import Cell, Scene

JUNK_TOLERANCE_PIXELS = 2


@dataclass(frozen=True)
class TurnVerdict:
    """A turn's rubric score (1-5), success (score 5) and the rubric line that decided it."""

    score: int
    reason: str
    junk_pixels: int = 0  # of the output image

    @property
    def success(self) -> bool:
        return self.score == 5


def _objects_in(scene: Scene, cells: set[Cell], inside: bool) -> tuple:
    return tuple(o for o in scene.objects if (o.cell in cells) == inside)


def partial_attempt(edit: Edit, before: Scene, output: ParsedScene) -> bool:
    """Whether a not-done edit was attempted the wrong way (rubric score 2), per kind:

    * color_alter: an object in the target's cell has another colour than before, or a junk
      component there has the asked colour;
    * subject_replace: an object in the target's cell has another shape than before;
    * size_change: an object in the target's cell has the asked size;
    * subject_remove: the target is gone from its cell but something (object or junk) is left there;
    * subject_add: an object on the destination cell (wrong attributes), or the asked object
      appeared on another cell;
    * position_change: the target left its cell for another one than asked, or reached the
      destination while a copy stayed behind, or something of its colour is on the destination;
    * background_change: the background changed, to another colour than asked.
    """
    out = output.scene
    if isinstance(edit, BackgroundChange):
        return out.background not in (before.background, edit.background)
    if isinstance(edit, Add):
        (cell,) = edited_cells(before, edit)
        appeared = [o for o in out.find(edit.new) if o not in before.objects]
        return bool(out.at(cell)) or bool(appeared)
    target = find_one(before, edit.target)
    here = out.at(target.cell)
    if isinstance(edit, ColorChange):
        return (any(o.desc.color != target.desc.color for o in here)
                or any(b.color == edit.color for b in output.junk_at(target.cell)))
    if isinstance(edit, Replace):
        return any(o.desc.shape != target.desc.shape for o in here)
    if isinstance(edit, Resize):
        return any(o.desc.size == edit.size for o in here)
    if isinstance(edit, Remove):
        return target not in here and bool(here or output.junk_at(target.cell))
    if isinstance(edit, Move):
        _, dest = edited_cells(before, edit)
        elsewhere = [o for o in out.find(target.desc) if o.cell != target.cell]
        left = target not in here
        at_dest = any(o.cell == dest for o in elsewhere)
        return ((left and any(o.cell != dest for o in elsewhere)) or (at_dest and not left)
                or any(o.desc.color == target.desc.color for o in out.at(dest)))
    raise TypeError(f"not an edit: {edit!r}")


def score_turn(before: ParsedScene, output: ParsedScene, edit: Edit) -> TurnVerdict:
    """The rubric of the module docstring for one turn."""
    source = before.scene
    try:
        expected = apply_edit(source, edit)
        region = set(edited_cells(source, edit))
    except NotApplicable as err:
        return TurnVerdict(1, f"not applicable to the input: {err}", output.junk_pixels)
    out = output.scene
    is_background = isinstance(edit, BackgroundChange)
    done = _objects_in(out, region, True) == _objects_in(expected, region, True)
    if is_background:
        done = out.background == expected.background
    rest_kept = _objects_in(out, region, False) == _objects_in(expected, region, False)
    if not is_background:
        rest_kept = rest_kept and out.background == expected.background
    if done and rest_kept and output.junk_pixels <= JUNK_TOLERANCE_PIXELS:
        return TurnVerdict(5, "edit done, rest kept, clean", output.junk_pixels)
    if done and rest_kept:
        return TurnVerdict(4, f"edit done, rest kept, {output.junk_pixels} junk pixels", output.junk_pixels)
    if done:
        return TurnVerdict(3, "edit done with collateral changes", output.junk_pixels)
    if partial_attempt(edit, source, output):
        return TurnVerdict(2, "edit attempted the wrong way", output.junk_pixels)
    return TurnVerdict(1, "edit not attempted", output.junk_pixels)

