"""PNG charts drawn with PIL alone (no plotting library in the stack): per-turn curves and
per-type bars, one colour per run.

* :func:`line_panels`: side-by-side panels (e.g. EdiVal-IF, marginal success, EdiVal-CC,
  EdiVal-O), x = turns, one line per run, values in percent on a fixed 0-100 axis so panels
  and runs compare at a glance; None values are gaps.
* :func:`grouped_bars`: one row per category (edit type), one horizontal bar per run, the value
  written at the bar's end.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from PIL import Image, ImageDraw, ImageFont

COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
GRID = (225, 225, 225)
AXIS = (90, 90, 90)


@dataclass(frozen=True)
class Series:
    """One run's values (percent; None: no value)."""

    name: str
    values: tuple[Optional[float], ...]


@dataclass(frozen=True)
class Panel:
    title: str
    x_labels: tuple[str, ...]
    series: tuple[Series, ...]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def color(index: int) -> tuple[int, int, int]:
    return COLORS[index % len(COLORS)]


def _legend(draw: ImageDraw.ImageDraw, names: Sequence[str], x: int, y: int, font: Any) -> None:
    for i, name in enumerate(names):
        draw.rectangle([x, y + 3, x + 14, y + 11], fill=color(i))
        draw.text((x + 20, y), name, fill="black", font=font)
        x += 40 + int(draw.textlength(name, font=font))


def line_panels(panels: Sequence[Panel], path: str | Path, panel_size: tuple[int, int] = (300, 240),
                y_max: float = 100.0) -> Path:
    """Panels side by side, y from 0 to ``y_max``; a shared legend of the first panel's series."""
    if not panels:
        raise ValueError("no panels to draw")
    width, height = panel_size
    left, right, top, bottom = 42, 14, 28, 30
    legend_height = 26
    image = Image.new("RGB", (width * len(panels), height + legend_height), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = _font(11), _font(13)
    for p, panel in enumerate(panels):
        x0, x1 = p * width + left, (p + 1) * width - right
        y0, y1 = top, height - bottom
        draw.text((p * width + left, 6), panel.title, fill="black", font=title_font)
        for tick in range(0, int(y_max) + 1, 20):
            y = y1 - (y1 - y0) * tick / y_max
            draw.line([x0, y, x1, y], fill=GRID)
            draw.text((x0 - 30, y - 6), f"{tick:>3d}", fill=AXIS, font=font)
        n = len(panel.x_labels)
        xs = [x0 + (x1 - x0) * (i + 0.5) / n for i in range(n)]
        for x, label in zip(xs, panel.x_labels):
            draw.text((x - draw.textlength(label, font=font) / 2, y1 + 6), label, fill=AXIS, font=font)
        draw.line([x0, y0, x0, y1, x1, y1], fill=AXIS)
        for s, series in enumerate(panel.series):
            points = [(x, y1 - (y1 - y0) * min(max(v, 0.0), y_max) / y_max) if v is not None else None
                      for x, v in zip(xs, series.values)]
            for a, b in zip(points, points[1:]):
                if a is not None and b is not None:
                    draw.line([a, b], fill=color(s), width=2)
            for point in points:
                if point is not None:
                    draw.ellipse([point[0] - 3, point[1] - 3, point[0] + 3, point[1] + 3], fill=color(s))
    _legend(draw, [s.name for s in panels[0].series], left, height + 4, font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def grouped_bars(title: str, categories: Sequence[str], series: Sequence[Series], path: str | Path,
                 x_max: float = 100.0, bar_height: int = 12, bar_width: int = 360) -> Path:
    """One row per category, one horizontal bar per series (values 0..x_max, None: no bar)."""
    if not categories or not series:
        raise ValueError("nothing to draw")
    font, title_font = _font(11), _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = 12 + max(int(probe.textlength(c, font=font)) for c in categories)
    row_height = bar_height * len(series) + 10
    top, legend_height = 30, 40
    width = label_width + bar_width + 60
    height = top + row_height * len(categories) + legend_height
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 6), title, fill="black", font=title_font)
    x0 = label_width
    bottom = top + row_height * len(categories)
    for tick in range(0, int(x_max) + 1, 20):
        x = x0 + bar_width * tick / x_max
        draw.line([x, top, x, bottom], fill=GRID)
        draw.text((x - draw.textlength(str(tick), font=font) / 2, bottom + 2), str(tick), fill=AXIS, font=font)
    for c, category in enumerate(categories):
        y = top + c * row_height
        draw.text((8, y + row_height / 2 - 7), category, fill="black", font=font)
        for s, one in enumerate(series):
            value = one.values[c]
            if value is None:
                continue
            yb = y + 5 + s * bar_height
            draw.rectangle([x0, yb, x0 + bar_width * min(max(value, 0.0), x_max) / x_max, yb + bar_height - 2],
                           fill=color(s))
            draw.text((x0 + bar_width * min(max(value, 0.0), x_max) / x_max + 4, yb - 1), f"{value:.1f}",
                      fill=AXIS, font=_font(9))
    draw.line([x0, top, x0, top + row_height * len(categories)], fill=AXIS)
    _legend(draw, [s.name for s in series], 8, height - legend_height + 18, font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
