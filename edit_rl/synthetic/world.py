"""The synthetic shapes world: palette, shapes, sizes, grid geometry and symbolic scenes.

A scene is a background colour and objects on a G x G grid (G = 3), at most one per cell. An
object is a shape (circle, square, triangle) of a colour and a size (small, large), named
"<size> <colour> <shape>" ("large blue circle"). Object colours are distinct within a scene, so
a name is unique. Pixels: docs/shapes-world.md (32 x 32 images, 10 px cells,
9 px objects); :class:`Geometry` scales the same layout to other sizes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
# Saturated object colours and background colours, all >= 98 apart in RGB (nearest-colour
# quantisation with a 60 radius cannot confuse two of them).
OBJECT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 230),
    "yellow": (240, 220, 40), "purple": (150, 60, 200), "cyan": (40, 200, 220),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245), "black": (25, 25, 25), "gray": (128, 128, 128), "brown": (130, 80, 40),
}
PALETTE: dict[str, tuple[int, int, int]] = {**OBJECT_COLORS, **BACKGROUNDS}
# Relation phrase -> (row, col) offset from the anchor object's cell.
RELATIONS: dict[str, tuple[int, int]] = {
    "to the left of": (0, -1), "to the right of": (0, 1), "above": (-1, 0), "below": (1, 0),
}
GRID = 3
DEFAULT_IMAGE_SIZE = 32
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 64

Cell = tuple[int, int]  # (row, col)


@dataclass(frozen=True)
class Geometry:
    """Pixel layout of an image_size x image_size image: a GRID x GRID block of square cells of
    ``cell = image_size // GRID`` px, centred (``margin`` px of background before it). A large
    object is the largest odd size below the cell (9 px in a 10 px cell), a small one about 0.55
    of the cell, odd (5 px); objects of both sizes share the cell's centre pixel."""

    image_size: int = DEFAULT_IMAGE_SIZE

    def __post_init__(self) -> None:
        if not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got {self.image_size}")

    @property
    def cell(self) -> int:
        return self.image_size // GRID

    @property
    def margin(self) -> int:
        return (self.image_size - GRID * self.cell) // 2

    def object_px(self, size: str) -> int:
        """Side of an object's bounding square in pixels (odd)."""
        large = self.cell - 1 if (self.cell - 1) % 2 else self.cell - 2
        if size == "large":
            return large
        if size == "small":
            small = int(0.55 * self.cell)
            return small if small % 2 else small - 1
        raise ValueError(f"unknown size {size!r}")

    def centre(self, cell: Cell) -> tuple[int, int]:
        """(y, x) of the centre pixel of a cell's objects."""
        offset = (self.cell - 1) // 2
        return (self.margin + cell[0] * self.cell + offset, self.margin + cell[1] * self.cell + offset)

    def cell_of(self, y: float, x: float) -> Cell:
        """The cell holding pixel position (y, x); positions in the margin go to the nearest cell."""
        def index(v: float) -> int:
            return min(max(int((v - self.margin) // self.cell), 0), GRID - 1)
        return (index(y), index(x))


def in_grid(cell: Cell) -> bool:
    return 0 <= cell[0] < GRID and 0 <= cell[1] < GRID


@dataclass(frozen=True, order=True)
class ObjectDesc:
    """What names an object: size, colour, shape."""

    size: str
    color: str
    shape: str

    def __post_init__(self) -> None:
        if self.size not in SIZES or self.color not in OBJECT_COLORS or self.shape not in SHAPES:
            raise ValueError(f"not an object of this world: {self.size!r} {self.color!r} {self.shape!r}")

    @property
    def name(self) -> str:
        return f"{self.size} {self.color} {self.shape}"


@dataclass(frozen=True, order=True)
class SceneObject:
    """An object in a cell (order: row, col, then attributes)."""

    row: int
    col: int
    desc: ObjectDesc

    @property
    def cell(self) -> Cell:
        return (self.row, self.col)

    @property
    def name(self) -> str:
        return self.desc.name

    def with_desc(self, desc: ObjectDesc) -> "SceneObject":
        return SceneObject(self.row, self.col, desc)

    def at(self, cell: Cell) -> "SceneObject":
        return SceneObject(cell[0], cell[1], self.desc)


@dataclass(frozen=True)
class Scene:
    """A background name and objects, kept sorted by cell so equal scenes compare equal.
    The background may be any palette colour (a parsed, mis-edited image can have a red one)."""

    background: str
    objects: tuple[SceneObject, ...]

    def __post_init__(self) -> None:
        if self.background not in PALETTE:
            raise ValueError(f"unknown background {self.background!r}")
        object.__setattr__(self, "objects", tuple(sorted(self.objects)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objects)

    @property
    def occupied(self) -> set[Cell]:
        return {o.cell for o in self.objects}

    def at(self, cell: Cell) -> tuple[SceneObject, ...]:
        return tuple(o for o in self.objects if o.cell == cell)

    def find(self, desc: ObjectDesc) -> tuple[SceneObject, ...]:
        return tuple(o for o in self.objects if o.desc == desc)

    def to_dict(self) -> dict[str, Any]:
        return {"background": self.background,
                "objects": [{"row": o.row, "col": o.col, "size": o.desc.size, "color": o.desc.color,
                             "shape": o.desc.shape} for o in self.objects]}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the ``target_state`` of a chain turn."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Scene":
        data = json.loads(text)
        return cls(data["background"], tuple(
            SceneObject(int(o["row"]), int(o["col"]), ObjectDesc(o["size"], o["color"], o["shape"]))
            for o in data["objects"]))
