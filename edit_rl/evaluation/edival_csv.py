"""EdiVal-Bench's instruction file as chains (TianyuCodings/EdiVal ``oai_instruction_generation_output.csv``).

The file has one row per (image, turn): 572 images x 3 turns. Columns ``image_index``, ``turns``
(the row's turn t), and Python-literal lists CUMULATIVE up to turn t: ``task_type``,
``instructions``, ``format_instructions`` (one item per turn 1..t), ``unchanged_objects`` (objects
unchanged since the input image), ``all_objects`` (every object seen so far), ``available_objects``;
``bg_consistency`` ("True"/"False", False from the first background change on). EdiVal's
``eval.py`` reads the LAST item of the row's lists as turn t and compares image 0 with image t.

Conversion to :class:`~edit_rl.data.ChainTurn`'s per-turn own lists (``edit_rl.data.chain``),
such that :func:`edit_rl.data.cumulative_lists` gives back the CSV's lists exactly:

* ``unchanged_objects`` of turn t: the CSV's cumulative list at t. The file does not say which
  objects turn t alone leaves alone, only those unchanged since the input: a subset of the
  own list, and what the intersection over turns 1..t needs to reproduce the CSV;
* ``all_objects`` of turn t: the CSV's list at t (a superset of the objects of images t-1 and t;
  boxes of objects no longer present are simply not detected);
* ``bg_consistency`` of turn t: the CSV's flag until it turns False; after that, False only on
  ``background_change`` turns.

Quirks handled: instructions wrapped in a pair of double quotes (the file's count and position
instructions, 372 list items: ``'"Change the count of nest to 4"'``, after the CSV's doubled
quotes are undone) lose the wrapping pair; inner quotes (``'to "leather"'``) are kept.

The input image of ``image_index`` i is looked up in the image folder as ``i_input_raw.png``,
``i_input_raw.jpg`` (EdiVal's ``input_images_resize_512.zip``), ``i.png`` or ``i.jpg``.

Nothing raises on bad data: every CSV row that does not end up in a chain gets a
:class:`~edit_rl.data.RowError` (its 0-based data row index, the image and turn, and why); a
chain is kept only when all its rows, its turn sequence (1..T, T the longest chain's in the
file: a chain whose last row is unusable is dropped, not kept shorter) and its image are usable.
"""
from __future__ import annotations

import ast
import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from PIL import Image, UnidentifiedImageError

from edit_rl.data.chain import ChainTurn, EditChain
from edit_rl.data.parquet import RowError

REQUIRED_COLUMNS: tuple[str, ...] = ("image_index", "turns", "task_type", "instructions", "bg_consistency",
                                     "unchanged_objects", "all_objects")
IMAGE_NAMES: tuple[str, ...] = ("{index}_input_raw.png", "{index}_input_raw.jpg", "{index}.png", "{index}.jpg")
BACKGROUND_CHANGE = "background_change"
MAX_CELL_CHARS = 2**31 - 1  # csv.field_size_limit while reading (a C long on every platform)
SOURCE = "edival"


class EdivalFileError(ValueError):
    """The instruction file cannot be read at all (missing, not a CSV, required column missing)."""


@dataclass(frozen=True)
class EdivalRow:
    """One parsed CSV row: turn ``turn`` of image ``image_index``, with its cumulative lists."""

    row: int
    image_index: int
    turn: int
    task_types: tuple[str, ...]
    instructions: tuple[str, ...]
    unchanged_objects: tuple[str, ...]
    all_objects: tuple[str, ...]
    bg_consistency: bool


@dataclass(frozen=True)
class EdivalLoadResult:
    """The usable chains (in order of first appearance of their image) and a RowError for every
    CSV row that is not part of one. ``num_rows``: data rows in the file."""

    path: str
    chains: tuple[EditChain, ...]
    errors: tuple[RowError, ...]
    num_rows: int


def chain_id(image_index: int) -> str:
    return f"{SOURCE}-{image_index}"


def clean_instruction(text: str) -> str:
    """Strip whitespace and a pair of double quotes wrapping the whole instruction (the file's
    quirk); quotes inside the text stay."""
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def parse_list(value: Optional[str], column: str) -> tuple[str, ...]:
    """A Python-literal list of strings (the file's list columns)."""
    if value is None or not value.strip():
        raise ValueError(f"{column} is empty")
    try:
        parsed = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{column} is not a Python list literal: {value[:80]!r}") from None
    if not isinstance(parsed, (list, tuple)) or not all(isinstance(v, str) for v in parsed):
        raise ValueError(f"{column} is not a list of strings: {value[:80]!r}")
    return tuple(parsed)


def parse_bool(value: Optional[str], column: str) -> bool:
    text = (value or "").strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"{column} must be True or False, got {value!r}")


def parse_int(value: Optional[str], column: str, minimum: int) -> int:
    try:
        number = int((value or "").strip())
    except ValueError:
        raise ValueError(f"{column} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{column} must be >= {minimum}, got {number}")
    return number


def parse_row(row: int, raw: dict[str, Optional[str]]) -> EdivalRow:
    """One CSV row; ValueError with the reason when it is malformed."""
    image_index = parse_int(raw.get("image_index"), "image_index", 0)
    turn = parse_int(raw.get("turns"), "turns", 1)
    task_types = parse_list(raw.get("task_type"), "task_type")
    instructions = tuple(clean_instruction(s) for s in parse_list(raw.get("instructions"), "instructions"))
    for column, values in (("task_type", task_types), ("instructions", instructions)):
        if len(values) != turn:
            raise ValueError(f"{column} has {len(values)} item(s), expected {turn} (one per turn 1..{turn})")
        if not all(v.strip() for v in values):
            raise ValueError(f"{column} has an empty item")
    return EdivalRow(row, image_index, turn, task_types, instructions,
                     parse_list(raw.get("unchanged_objects"), "unchanged_objects"),
                     parse_list(raw.get("all_objects"), "all_objects"),
                     parse_bool(raw.get("bg_consistency"), "bg_consistency"))


def own_turns(rows: Sequence[EdivalRow]) -> tuple[ChainTurn, ...]:
    """One image's rows (turns 1..T in order) -> its ChainTurns with per-turn own lists (module
    docstring). ValueError naming the first inconsistent turn when the cumulative lists cannot
    come from one chain: a turn's lists do not extend the previous turn's, an object becomes
    unchanged again, an object leaves all_objects, or the background flag turns True again."""
    turns: list[ChainTurn] = []
    previous: Optional[EdivalRow] = None
    for row in rows:
        t = row.turn
        if previous is not None:
            if row.instructions[:-1] != previous.instructions or row.task_types[:-1] != previous.task_types:
                raise ValueError(f"turn {t}: instructions/task types do not extend turn {t - 1}'s")
            new_unchanged = [o for o in row.unchanged_objects if o not in previous.unchanged_objects]
            if new_unchanged:
                raise ValueError(f"turn {t}: unchanged_objects {new_unchanged} were not unchanged at turn {t - 1}")
            lost = [o for o in previous.all_objects if o not in row.all_objects]
            if lost:
                raise ValueError(f"turn {t}: all_objects lacks {lost} listed at turn {t - 1}")
            if row.bg_consistency and not previous.bg_consistency:
                raise ValueError(f"turn {t}: bg_consistency is True after a background change")
        still_consistent = previous is None or previous.bg_consistency
        own_background = row.bg_consistency if still_consistent else row.task_types[-1] != BACKGROUND_CHANGE
        turns.append(ChainTurn(instruction=row.instructions[-1], task_type=row.task_types[-1],
                               unchanged_objects=row.unchanged_objects, all_objects=row.all_objects,
                               bg_consistency=own_background))
        previous = row
    return tuple(turns)


def find_image(image_dir: Path, image_index: int) -> Path:
    """The input image of ``image_index`` in ``image_dir`` (names in IMAGE_NAMES, first found),
    checked to decode whole (a truncated file or a decompression bomb is caught here, at load).
    FileNotFoundError / OSError with the reason otherwise."""
    names = [pattern.format(index=image_index) for pattern in IMAGE_NAMES]
    for name in names:
        path = image_dir / name
        if path.is_file():
            try:
                with Image.open(path) as image:
                    image.load()
                    return path
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
                raise OSError(f"{path} is not a readable image: {err}") from None
    raise FileNotFoundError(f"no input image in {image_dir} (tried {', '.join(names)})")


def _read_rows(path: Path) -> list[dict[str, Optional[str]]]:
    # The csv module refuses a cell over 131,072 characters and with it the whole file; one long
    # cell should cost at most its row (a list too long to parse is that row's RowError).
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL_CHARS))
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise EdivalFileError(f"{path}: missing column(s) {missing}; EdiVal's instruction file "
                                      f"has {list(REQUIRED_COLUMNS)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EdivalFileError(f"{path}: cannot read the EdiVal instruction file: {err}") from err


def load_edival_chains(csv_path: str | Path, image_dir: str | Path) -> EdivalLoadResult:
    """Every chain of EdiVal's instruction file whose rows, turns and input image are usable;
    a RowError for every other row (see the module docstring). Chains are ``edival-<image_index>``
    with turns in order and ``image_path`` relative to ``image_dir`` (pass the same folder to
    :meth:`~edit_rl.data.EditChain.load_image`). Raises :class:`EdivalFileError` only when the
    file itself cannot be read."""
    path, folder = Path(csv_path), Path(image_dir)
    raw_rows = _read_rows(path)
    errors: list[RowError] = []
    by_image: dict[int, dict[int, EdivalRow]] = {}
    for index, raw in enumerate(raw_rows):
        if None in raw:  # csv.DictReader puts the cells beyond the header under the key None
            errors.append(RowError(index, f"{len(raw[None])} cell(s) more than the header"))  # type: ignore[arg-type]
            continue
        try:
            row = parse_row(index, raw)
        except ValueError as err:
            where = f"image_index {raw.get('image_index')!r}, turn {raw.get('turns')!r}"
            errors.append(RowError(index, f"{where}: {err}"))
            continue
        turns = by_image.setdefault(row.image_index, {})
        if row.turn in turns:
            errors.append(RowError(index, f"image_index {row.image_index}, turn {row.turn}: duplicate of "
                                          f"row {turns[row.turn].row}"))
            continue
        turns[row.turn] = row

    chains: list[EditChain] = []
    num_turns = max((max(turns) for turns in by_image.values()), default=0)  # the file's chain length
    for image_index, turns in by_image.items():
        rows = [turns[t] for t in sorted(turns)]
        try:
            expected = list(range(1, len(rows) + 1))
            if sorted(turns) != expected:
                raise ValueError(f"turns {sorted(turns)} are not 1..{len(rows)} (a row is missing or unusable)")
            chain_turns = own_turns(rows)
            image = find_image(folder, image_index)
            if len(rows) != num_turns:
                raise ValueError(f"turns {sorted(turns)} are not 1..{num_turns}, the file's longest chain (a later "
                                 "row is missing or unusable)")
            chains.append(EditChain(chain_id(image_index), chain_turns, image.name, None, SOURCE))
        except (ValueError, OSError) as err:
            errors += [RowError(r.row, f"image_index {image_index}, turn {r.turn}: chain dropped: {err}") for r in rows]
    errors.sort(key=lambda e: e.row)
    return EdivalLoadResult(str(path), tuple(chains), tuple(errors), len(raw_rows))
