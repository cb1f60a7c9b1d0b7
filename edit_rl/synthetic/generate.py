"""Procedural scenes and 3-turn instruction chains, deterministic from a seed.

Scene: a background and 2-4 objects of distinct colours in distinct cells (shape, colour, size
and cell uniform). Chain: each turn picks an edit kind, uniformly among the allowed kinds that
have a valid edit and have not been used yet in the chain (any valid kind once all are used),
then an edit of that kind, uniformly among the valid ones; from turn 2 on, among those naming
(as target or anchor) an object an earlier turn created or changed, when there is one. Objects
are always named as the chain has made them so far, so a later turn depends on the earlier
ones: if turn 1 fails to turn the circle blue, "Remove the large blue circle" finds nothing.

Valid edits keep colours distinct, leave at least one object (no removal of the last one),
keep at most ``MAX_OBJECTS`` objects, and put added or moved objects on a free cell of the grid.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from edit_rl.data.chain import ChainTurn, EditChain
from edit_rl.synthetic.edits import (
    EDIT_TYPES,
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
    turn_object_lists,
)
from edit_rl.synthetic.grammar import instruction_text
from edit_rl.synthetic.render import render_png
from edit_rl.synthetic.world import (
    BACKGROUNDS,
    GRID,
    OBJECT_COLORS,
    RELATIONS,
    SHAPES,
    SIZES,
    Geometry,
    ObjectDesc,
    Scene,
    SceneObject,
)

MIN_OBJECTS, MAX_INITIAL_OBJECTS, MAX_OBJECTS = 2, 4, 5
NUM_TURNS = 3
SOURCE = "synthetic"


def generate_scene(rng: random.Random) -> Scene:
    """A random scene: background, 2-4 objects, distinct colours and cells."""
    count = rng.randint(MIN_OBJECTS, MAX_INITIAL_OBJECTS)
    cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], count)
    colors = rng.sample(sorted(OBJECT_COLORS), count)
    objects = tuple(SceneObject(r, c, ObjectDesc(rng.choice(SIZES), color, rng.choice(SHAPES)))
                    for (r, c), color in zip(cells, colors))
    return Scene(rng.choice(sorted(BACKGROUNDS)), objects)


def _applicable(scene: Scene, edit: Edit) -> bool:
    try:
        apply_edit(scene, edit)
    except NotApplicable:
        return False
    return True


def candidate_edits(scene: Scene, edit_type: str) -> list[Edit]:
    """Every valid edit of one kind on a scene (see the module docstring), in a fixed order."""
    free_colors = [c for c in sorted(OBJECT_COLORS) if c not in {o.desc.color for o in scene.objects}]
    descs = [o.desc for o in scene.objects]
    edits: list[Edit] = []
    if edit_type == "color_alter":
        edits = [ColorChange(d, c) for d in descs for c in free_colors]
    elif edit_type == "subject_remove":
        edits = [Remove(d) for d in descs] if len(descs) > 1 else []
    elif edit_type == "subject_add" and len(descs) < MAX_OBJECTS:
        edits = [Add(ObjectDesc(size, color, shape), relation, anchor)
                 for anchor in descs for relation in RELATIONS for color in free_colors
                 for size in SIZES for shape in SHAPES]
    elif edit_type == "subject_replace":
        edits = [Replace(d, s) for d in descs for s in SHAPES if s != d.shape]
    elif edit_type == "position_change":
        edits = [Move(d, relation, anchor) for d in descs for anchor in descs if anchor != d for relation in RELATIONS]
    elif edit_type == "background_change":
        edits = [BackgroundChange(b) for b in sorted(BACKGROUNDS) if b != scene.background]
    elif edit_type == "size_change":
        edits = [Resize(d, s) for d in descs for s in SIZES if s != d.size]
    elif edit_type not in EDIT_TYPES:
        raise ValueError(f"unknown edit type {edit_type!r}; known: {EDIT_TYPES}")
    return [e for e in edits if _applicable(scene, e)]


def named_objects(edit: Edit) -> tuple[ObjectDesc, ...]:
    """The existing objects an instruction names (target, anchor)."""
    return tuple(getattr(edit, name) for name in ("target", "anchor") if hasattr(edit, name))


def changed_object(before: Scene, after: Scene) -> tuple[ObjectDesc, ...]:
    """Objects of ``after`` that are not in ``before`` as they are (created, changed or moved)."""
    return tuple(o.desc for o in after.objects if o not in before.objects)


def generate_chain(seed: int, num_turns: int = NUM_TURNS, geometry: Geometry = Geometry(),
                   edit_types: Sequence[str] = EDIT_TYPES, chain_id: str | None = None) -> EditChain:
    """The chain of a seed (see the module docstring); its id defaults to "synthetic-<seed>"."""
    rng = random.Random(seed)
    scene = generate_scene(rng)
    initial = scene
    touched: set[ObjectDesc] = set()
    used: set[str] = set()
    turns: list[ChainTurn] = []
    for _ in range(num_turns):
        options = {t: candidate_edits(scene, t) for t in edit_types}
        kinds = [t for t in edit_types if options[t] and t not in used] or [t for t in edit_types if options[t]]
        if not kinds:
            raise RuntimeError(f"seed {seed}: no valid edit on {scene}")
        kind = rng.choice(kinds)
        focused = [e for e in options[kind] if touched & set(named_objects(e))]
        edit = rng.choice(focused or options[kind])
        after = apply_edit(scene, edit)
        unchanged, everything = turn_object_lists(scene, after, edit)
        turns.append(ChainTurn(instruction_text(edit), edit.task_type, unchanged, everything,
                               bg_consistency=not isinstance(edit, BackgroundChange),
                               target_state=after.to_json()))
        touched = {d for d in touched if after.find(d)} | set(changed_object(scene, after))
        used.add(kind)
        scene = after
    return EditChain(chain_id or f"{SOURCE}-{seed}", tuple(turns), image_path=None,
                     image_png=render_png(initial, geometry), source=SOURCE)
