"""Sample grids: rows x (1 + T) cells of a fixed size, images of any kind, captions drawn."""
import numpy as np
import torch
from PIL import Image

from edit_rl.observability import GridLayout, TrajectorySample, GridTurn, make_sample_grid, save_sample_grid
from edit_rl.observability.sample_grid import fit_image, to_pil, wrap_text

LONG = "replace the red umbrella with a bright yellow kite and make the sky look like a stormy evening"


def row(turns: int, size: int = 64) -> TrajectorySample:
    g = torch.Generator().manual_seed(turns)
    return TrajectorySample(
        input_image=np.full((size, size, 3), 200, np.uint8),
        turns=[GridTurn(torch.rand(3, size, size, generator=g), LONG, if_score=4.2 - t, cc_score=0.9)
               for t in range(turns)])


def test_grid_size_is_rows_by_cols_cells_and_saved_as_png(tmp_path):
    layout = GridLayout(image_size=128)
    rows = [row(3), row(3)]
    path = save_sample_grid(rows, tmp_path / "samples" / "step_000050.png", layout)
    img = Image.open(path)
    assert img.format == "PNG"
    assert img.size == (4 * layout.cell_width, 2 * layout.cell_height)
    assert layout.cell_width == 136 and layout.cell_height == 128 + 4 * 12 + 8


def test_rows_with_fewer_turns_leave_blank_cells():
    layout = GridLayout(image_size=64)
    grid = np.asarray(make_sample_grid([row(3), row(1)], layout))
    assert grid.shape == (2 * layout.cell_height, 4 * layout.cell_width, 3)
    blank = grid[layout.cell_height:, 2 * layout.cell_width:]
    assert (blank == 255).all()
    assert (grid[layout.cell_height:, layout.cell_width:2 * layout.cell_width] != 255).any()


def test_tiny_images_are_upscaled_with_nearest_and_pasted():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    big = fit_image(to_pil(checker), 256)
    assert big.size == (256, 256)
    arr = np.asarray(big)[..., 0]
    assert set(np.unique(arr)) == {0, 255}  # nearest: no blurred greys
    assert (arr[:4, :4] == 0).all() and (arr[:4, 4:8] == 255).all()
    assert fit_image(Image.new("RGB", (1024, 512)), 256).size == (256, 128)
    layout = GridLayout(image_size=256)
    grid = np.asarray(make_sample_grid([TrajectorySample(checker, [])], layout))
    assert grid.shape == (layout.cell_height, layout.cell_width, 3)
    pasted = grid[layout.pad:layout.pad + 256, layout.pad:layout.pad + 256, 0]
    assert np.array_equal(pasted, arr)


def test_image_kinds_convert_to_the_same_pixels():
    hwc = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    expected = (hwc * 255).round().astype(np.uint8)
    for image in (hwc, torch.from_numpy(hwc).permute(2, 0, 1), torch.from_numpy(hwc).double(),
                  expected, Image.fromarray(expected)):
        assert np.array_equal(np.asarray(to_pil(image)), expected)
    gray = to_pil(torch.ones(1, 8, 8) * 2.0)  # out of range: clipped
    assert gray.mode == "RGB" and (np.asarray(gray) == 255).all()


def test_captions_wrap_to_the_cell_and_are_drawn():
    from PIL import ImageFont
    font = ImageFont.load_default()
    lines = wrap_text(LONG, 128, font, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert all(font.getlength(s) <= 128 for s in lines)
    assert wrap_text("short one", 128, font, 3) == ["short one"]
    assert all(font.getlength(s) <= 40 for s in wrap_text("a" * 60, 40, font, 5))
    layout = GridLayout(image_size=128)
    grid = np.asarray(make_sample_grid([row(1)], layout))
    caption = grid[layout.pad + 128:, layout.cell_width:]  # under turn 1: text pixels
    assert (caption < 128).any()
    scores_line = caption[3 * 12:, :, :]
    assert ((scores_line[..., 2] > 100) & (scores_line[..., 0] < 60)).any()  # the blue "IF 4.20  CC 0.90"
