"""The synthetic shapes world: procedural scenes, renderer, 3-turn instruction chains, and the
verifiable scorers served like the real ones (a rubric judge behind the judge interface; EdiVal-CC
with a colour-segmentation detector and fixed features). No Ray.

World: :mod:`.world`, :mod:`.render`; pixels back to scenes: :mod:`.parse`; edits and their
language: :mod:`.edits`, :mod:`.grammar`; chains: :mod:`.generate`, :mod:`.splits`,
``python -m edit_rl.synthetic.make_chains``; scoring: :mod:`.rubric`, :mod:`.judge`, :mod:`.cc`.
"""
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
    edited_cells,
)
from edit_rl.synthetic.generate import generate_chain, generate_scene
from edit_rl.synthetic.grammar import instruction_text, parse_instruction
from edit_rl.synthetic.judge import SyntheticJudge
from edit_rl.synthetic.parse import ParsedScene, parse_image
from edit_rl.synthetic.render import render, render_pil, render_png
from edit_rl.synthetic.rubric import TurnVerdict, score_turn
from edit_rl.synthetic.splits import make_splits, split_seed
from edit_rl.synthetic.world import Geometry, ObjectDesc, Scene, SceneObject

__all__ = [
    "EDIT_TYPES", "Add", "BackgroundChange", "ColorChange", "Edit", "Geometry", "Move", "NotApplicable",
    "ObjectDesc", "ParsedScene", "Remove", "Replace", "Resize", "Scene", "SceneObject", "SyntheticJudge",
    "TurnVerdict", "apply_edit", "edited_cells", "generate_chain", "generate_scene", "instruction_text",
    "make_splits", "parse_image", "parse_instruction", "render", "render_pil", "render_png", "score_turn",
    "split_seed",
]
