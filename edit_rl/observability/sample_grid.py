"""PNG sample grids: one row per trajectory, columns input, turn 1, ..., turn T.

Each cell is the image, scaled to fit an image_size square (a small image is enlarged by a whole
factor with nearest-neighbour, so a 64 px tiny-model output stays crisp; a large one is shrunk),
over a caption: the turn's instruction wrapped to the cell width (at most caption_lines lines) and
its scores "IF 4.20  CC 0.91". Cells are (image_size + 2*pad) wide and (image_size + caption height
+ 2*pad) tall, so a grid is cols * cell_w by rows * cell_h pixels; rows with fewer turns leave the
last cells blank. Images may be PIL images, uint8 arrays (HWC or HW) or float arrays / tensors in
[0, 1] (HWC, CHW or HW).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ImageLike = Any  # PIL.Image.Image | np.ndarray | torch.Tensor


@dataclass
class GridTurn:
    image: ImageLike
    instruction: str
    if_score: Optional[float] = None
    cc_score: Optional[float] = None


@dataclass
class TrajectorySample:
    input_image: ImageLike
    turns: list[GridTurn] = field(default_factory=list)


@dataclass(frozen=True)
class GridLayout:
    image_size: int = 256
    caption_lines: int = 3  # instruction lines; one more line holds the scores
    pad: int = 4
    line_height: int = 12  # PIL's default font is about 11 px tall

    @property
    def cell_width(self) -> int:
        return self.image_size + 2 * self.pad

    @property
    def cell_height(self) -> int:
        return self.image_size + (self.caption_lines + 1) * self.line_height + 2 * self.pad


def to_pil(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image, a uint8 array or a float array / tensor in [0, 1]."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if hasattr(image, "detach"):  # a torch tensor
        image = image.detach().float().cpu().numpy() if image.is_floating_point() else image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"expected an HW, HWC or CHW image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = (np.nan_to_num(arr.astype(np.float32), nan=0.0).clip(0.0, 1.0) * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr).convert("RGB")


def fit_image(image: Image.Image, size: int) -> Image.Image:
    """Scale to fit a size x size square: whole-factor nearest upscaling when small, else shrink."""
    w, h = image.size
    if max(w, h) <= size:
        k = size // max(w, h)
        return image.resize((w * k, h * k), Image.Resampling.NEAREST) if k > 1 else image
    scale = size / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def wrap_text(text: str, width: int, font: Any, max_lines: int) -> list[str]:
    """Greedy word wrap to `width` pixels; a last line that does not fit ends with '...'."""
    def fits(s: str) -> bool:
        return font.getlength(s) <= width

    lines: list[str] = []
    for word in text.split():
        while not fits(word):  # a word longer than the cell: cut it
            cut = max((i for i in range(1, len(word)) if fits(word[:i])), default=1)
            lines, word = _push(lines, word[:cut], fits), word[cut:]
        lines = _push(lines, word, fits)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and not fits(last + "..."):
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "..."]
    return lines


def _push(lines: list[str], word: str, fits: Any) -> list[str]:
    if lines and fits(lines[-1] + " " + word):
        return lines[:-1] + [lines[-1] + " " + word]
    return lines + [word]


def make_sample_grid(rows: Sequence[TrajectorySample], layout: GridLayout = GridLayout()) -> Image.Image:
    cols = 1 + max((len(r.turns) for r in rows), default=0)
    grid = Image.new("RGB", (cols * layout.cell_width, len(rows) * layout.cell_height), "white")
    font = ImageFont.load_default()
    for i, row in enumerate(rows):
        cells = [(row.input_image, "input", "")] + [(t.image, t.instruction, _scores(t)) for t in row.turns]
        for j, (image, caption, scores) in enumerate(cells):
            grid.paste(_cell(image, caption, scores, layout, font), (j * layout.cell_width, i * layout.cell_height))
    return grid


def _cell(image: ImageLike, caption: str, scores: str, layout: GridLayout, font: Any) -> Image.Image:
    """One cell on its own canvas, so text never spills into the neighbours."""
    cell = Image.new("RGB", (layout.cell_width, layout.cell_height), "white")
    img = fit_image(to_pil(image), layout.image_size)
    size, pad = layout.image_size, layout.pad
    cell.paste(img, (pad + (size - img.width) // 2, pad + (size - img.height) // 2))
    draw = ImageDraw.Draw(cell)
    y = pad + size
    for line in wrap_text(caption, size, font, layout.caption_lines):
        draw.text((pad, y), line, fill="black", font=font)
        y += layout.line_height
    if scores:
        draw.text((pad, pad + size + layout.caption_lines * layout.line_height), scores, fill=(0, 70, 160), font=font)
    return cell


def save_sample_grid(rows: Sequence[TrajectorySample], path: str | Path,
                     layout: GridLayout = GridLayout()) -> Path:
    """Write the grid as a PNG at `path` (a run's is RunDir.sample_path(step): samples/step_XXXXXX.png)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_sample_grid(rows, layout).save(path)
    return path


def _scores(turn: GridTurn) -> str:
    parts = [f"{name} {v:.2f}" for name, v in (("IF", turn.if_score), ("CC", turn.cc_score)) if v is not None]
    return "  ".join(parts)
