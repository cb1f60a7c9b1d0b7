"""Deterministic tiny random-weight builds of the real models, one family per file.

Each module exposes a builder ``build_tiny_<family>(folder: Path) -> None`` that writes a folder
loadable with the same ``from_pretrained`` calls as the real hub checkpoint; register it in
``edit_rl.models.registry.TINY_MODELS`` (one line).
"""
