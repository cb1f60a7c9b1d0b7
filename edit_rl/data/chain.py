"""The instruction-chain records every data source produces (synthetic world, Parquet, EdiVal).

A chain is a reference image and T turns. Each turn carries its instruction and what EdiVal-CC
needs to check it, as the turn's OWN lists, relative to the image the turn edits (image k-1):

* ``unchanged_objects``: objects of image k-1 this turn must leave alone;
* ``all_objects``: the objects of images k-1 and k (their boxes are cut out of the background);
* ``bg_consistency``: False when this turn changes the background.

Those are what the consecutive pairing (MT-EditFlow's training reward, image k-1 vs image k)
checks. The reference pairing (EdiVal's benchmark, image 0 vs image k) needs the lists cumulated
over turns 1..k; :func:`edit_rl.data.turn_specs.turn_specs` derives them. EdiVal's CSV stores the
cumulated lists; its loader converts them to per-turn lists (cumulating them back must give
the CSV's lists).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _str_tuple(values: object, name: str) -> tuple[str, ...]:
    """A list or tuple of strings as a tuple; anything else is a ValueError naming the field."""
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, got {type(values).__name__}")
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must hold strings only, got {list(values)!r}")
    return tuple(values)


@dataclass(frozen=True)
class ChainTurn:
    """One turn of a chain (lists are the turn's own, see the module docstring).
    ``target_state``: JSON of the symbolic scene after the turn (synthetic chains only)."""

    instruction: str
    task_type: str
    unchanged_objects: tuple[str, ...]
    all_objects: tuple[str, ...]
    bg_consistency: bool
    target_state: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {self.instruction!r}")
        if not isinstance(self.task_type, str) or not self.task_type.strip():
            raise ValueError(f"task_type must be a non-empty string, got {self.task_type!r}")
        object.__setattr__(self, "unchanged_objects", _str_tuple(self.unchanged_objects, "unchanged_objects"))
        object.__setattr__(self, "all_objects", _str_tuple(self.all_objects, "all_objects"))
        if not isinstance(self.bg_consistency, bool):
            raise ValueError(f"bg_consistency must be a bool, got {self.bg_consistency!r}")
        if self.target_state is not None and not isinstance(self.target_state, str):
            raise ValueError(f"target_state must be a JSON string or None, got {type(self.target_state).__name__}")


@dataclass(frozen=True)
class EditChain:
    """A reference image and its turns. The image is inline PNG bytes (``image_png``, used first)
    or a file (``image_path``, absolute or relative to the ``image_dir`` given to
    :meth:`load_image`); at least one must be set. ``source`` names the producer
    ("synthetic", "edival", ...). ``chain_id`` is unique within a data set (the ban list uses it)."""

    chain_id: str
    turns: tuple[ChainTurn, ...]
    image_path: Optional[str]
    image_png: Optional[bytes]
    source: str

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, str) or not self.chain_id:
            raise ValueError(f"chain_id must be a non-empty string, got {self.chain_id!r}")
        if not isinstance(self.turns, (list, tuple)) or not self.turns:
            raise ValueError(f"chain {self.chain_id!r}: needs at least one turn")
        if not all(isinstance(t, ChainTurn) for t in self.turns):
            raise ValueError(f"chain {self.chain_id!r}: turns must be ChainTurn records")
        object.__setattr__(self, "turns", tuple(self.turns))
        if self.image_path is None and self.image_png is None:
            raise ValueError(f"chain {self.chain_id!r}: has neither image_path nor image_png")
        if self.image_png is not None and (not isinstance(self.image_png, bytes)
                                           or self.image_png[:8] != PNG_SIGNATURE):
            raise ValueError(f"chain {self.chain_id!r}: image_png is not PNG data")
        if self.image_path is not None and (not isinstance(self.image_path, str) or not self.image_path):
            raise ValueError(f"chain {self.chain_id!r}: image_path must be a non-empty string")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"chain {self.chain_id!r}: source must be a non-empty string")

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def instructions(self) -> tuple[str, ...]:
        return tuple(t.instruction for t in self.turns)

    def resolve_image_path(self, image_dir: Optional[str | Path] = None) -> Optional[Path]:
        """``image_path`` joined to ``image_dir`` when relative (None without an image path)."""
        if self.image_path is None:
            return None
        path = Path(self.image_path)
        return path if path.is_absolute() or image_dir is None else Path(image_dir) / path

    def load_image(self, image_dir: Optional[str | Path] = None) -> Image.Image:
        """The reference image as RGB: decoded ``image_png`` if present, else the file at
        :meth:`resolve_image_path`. A missing file, or an image that does not decode (corrupt,
        truncated, a decompression bomb), raises an error naming the chain (and the path)."""
        if self.image_png is not None:
            try:
                with Image.open(io.BytesIO(self.image_png)) as image:
                    return image.convert("RGB")
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                raise OSError(f"chain {self.chain_id!r}: cannot decode its inline PNG: {err}") from err
        path = self.resolve_image_path(image_dir)
        assert path is not None  # __post_init__: one of the two is set
        if not path.is_file():
            raise FileNotFoundError(f"chain {self.chain_id!r}: image {str(path)!r} not found"
                                    + ("" if image_dir is not None else " (no image_dir given)"))
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise OSError(f"chain {self.chain_id!r}: cannot read image {str(path)!r}: {err}") from err


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of an image (lossless, deterministic for the same pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
