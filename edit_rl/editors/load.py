"""EditorConfig -> the family's `Editor`."""

from __future__ import annotations

import torch

from edit_rl.config.schema import EditorConfig
from edit_rl.editors.base import Editor
from edit_rl.editors.flux2_klein import Flux2KleinEditor
from edit_rl.editors.flux_kontext import FluxKontextEditor
from edit_rl.editors.qwen_image_edit import QwenImageEditEditor
from edit_rl.editors.shapes_kontext import ShapesKontextEditor

# family -> Editor class; a new family adds one line.
EDITOR_FAMILIES: dict[str, type[Editor]] = {
    "flux_kontext": FluxKontextEditor,
    "flux2_klein": Flux2KleinEditor,
    "qwen_image_edit": QwenImageEditEditor,
    "shapes_kontext": ShapesKontextEditor,
}


def load_editor(cfg: EditorConfig, device: torch.device | str = "cpu", transformer_only: bool = False) -> Editor:
    """Load ``cfg.family``'s editor from ``cfg.name_or_path`` (hub id, folder, or "tiny/..." name).
    ``transformer_only`` (learner ranks): only the transformer's weights are read; the text
    encoders and the VAE are built on the meta device (configs, no weights), and `condition` /
    `decode` refuse to run."""
    if cfg.family not in EDITOR_FAMILIES:
        raise NotImplementedError(f"editor family {cfg.family!r} is not implemented yet; "
                                  f"available: {sorted(EDITOR_FAMILIES)}")
    return EDITOR_FAMILIES[cfg.family](cfg, device, transformer_only=transformer_only)
