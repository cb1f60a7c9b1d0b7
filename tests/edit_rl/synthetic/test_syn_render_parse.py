"""Renderer determinism and the pixel parser against the symbolic ground truth."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from edit_rl.synthetic import Geometry, ObjectDesc, Scene, SceneObject, generate_scene, parse_image, render
from edit_rl.synthetic.parse import to_rgb_array
from edit_rl.synthetic.render import shape_mask
from edit_rl.synthetic.world import BACKGROUNDS, OBJECT_COLORS


def test_geometry_of_the_notes_and_larger_images():
    g = Geometry()  # 32 x 32, 3 x 3 cells of 10 px, 9 px objects (synthetic-world.md)
    assert (g.image_size, g.cell, g.margin, g.object_px("large"), g.object_px("small")) == (32, 10, 1, 9, 5)
    assert g.centre((0, 0)) == (5, 5) and g.centre((2, 1)) == (25, 15)
    g64 = Geometry(64)
    assert (g64.cell, g64.margin, g64.object_px("large"), g64.object_px("small")) == (21, 0, 19, 11)
    with pytest.raises(ValueError, match="image_size"):
        Geometry(16)


def test_shape_masks_have_the_documented_areas():
    assert [int(shape_mask(s, 9).sum()) for s in ("square", "circle", "triangle")] == [81, 69, 49]
    assert [int(shape_mask(s, 5).sum()) for s in ("square", "circle", "triangle")] == [25, 21, 17]
    assert shape_mask("triangle", 9)[0].tolist() == [False] * 4 + [True] + [False] * 4
    assert shape_mask("triangle", 9)[-1].all()


def test_render_is_deterministic_and_crisp():
    scene_a, scene_b = generate_scene(random.Random(7)), generate_scene(random.Random(7))
    assert scene_a == scene_b
    image = render(scene_a)
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    assert np.array_equal(image, render(scene_b))
    palette = {tuple(c) for c in (*OBJECT_COLORS.values(), *BACKGROUNDS.values())}
    assert {tuple(p) for p in image.reshape(-1, 3)} <= palette
    assert tuple(image[0, 0]) == BACKGROUNDS[scene_a.background]


def test_parser_recovers_every_rendered_scene_exactly():
    for seed in range(400):
        scene = generate_scene(random.Random(seed))
        parsed = parse_image(render(scene))
        assert parsed.scene == scene, seed
        assert parsed.junk == () and all(o.iou == 1.0 for o in parsed.objects)
    for size in (40, 48, 64):
        for seed in range(40):
            scene = generate_scene(random.Random(seed))
            assert parse_image(render(scene, Geometry(size))).scene == scene, (size, seed)


def test_parser_boxes_and_junk():
    scene = Scene("white", (SceneObject(0, 0, ObjectDesc("large", "red", "circle")),
                            SceneObject(1, 2, ObjectDesc("small", "cyan", "triangle"))))
    image = render(scene)
    parsed = parse_image(image)
    assert [o.box for o in parsed.objects] == [(1.0, 1.0, 10.0, 10.0), (23.0, 13.0, 28.0, 18.0)]
    image[30, 2] = OBJECT_COLORS["blue"]  # a stray pixel
    image[20:22, 20:22] = (90, 200, 90)  # an off-palette 2x2 smudge
    parsed = parse_image(image)
    assert parsed.scene == scene
    assert sorted((b.color, b.pixels, b.cell) for b in parsed.junk) == [("blue", 1, (2, 0)), ("unknown", 4, (1, 1))]
    assert parsed.junk_pixels == 5


def test_parser_accepts_pil_arrays_and_tensors():
    scene = generate_scene(random.Random(3))
    image = render(scene)
    chw = torch.from_numpy(image).permute(2, 0, 1)
    for form in (image, Image.fromarray(image), chw, chw.float() / 255.0):
        assert np.array_equal(to_rgb_array(form), image)
        assert parse_image(form).scene == scene


def test_parser_tolerates_mild_pixel_noise():
    rng = np.random.default_rng(0)
    for seed in range(100):
        scene = generate_scene(random.Random(seed))
        noisy = render(scene).astype(float) + rng.normal(0.0, 10.0, (32, 32, 3))
        parsed = parse_image(np.clip(noisy, 0, 255).round().astype(np.uint8))
        assert parsed.scene == scene and parsed.junk_pixels == 0, seed
