"""EdiVal-CC formulas on hand-built tensors with known answers (edit_rl/consistency/similarity.py,
images.py)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from edit_rl.consistency.images import box_to_pixels, crop_box, resize_square, to_uint8_chw
from edit_rl.consistency.similarity import (
    background_mask,
    combine_cc,
    masked_global_cosine,
    object_similarity,
    patch_weights,
)


def test_object_similarity_is_half_cls_cosine_plus_half_mean_patch_cosine():
    cls_a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    cls_b = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    # patches (N, Hp, Wp, D) = (2, 1, 2, 2)
    patches_a = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]])
    patches_b = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, 2.0], [0.0, 2.0]]]])
    # row 0: cos(CLS) = 0, means [.5, .5] vs [1, 1] -> cos 1  => 0.5
    # row 1: cos(CLS) = 1/sqrt(2), means [1, 0] vs [0, 2] -> 0  => 0.5 / sqrt(2)
    got = object_similarity(cls_a, cls_b, patches_a, patches_b)
    torch.testing.assert_close(got, torch.tensor([0.5, 0.5 / math.sqrt(2.0)]))
    torch.testing.assert_close(object_similarity(cls_a, cls_b, patches_a, patches_b, alpha=1.0),
                               torch.tensor([0.0, 1.0 / math.sqrt(2.0)]))


def test_background_mask_truncates_clamps_and_fills_inclusive_like_pil_rectangle():
    mask = background_mask(6, 8, torch.tensor([[1.7, 2.2, 3.9, 4.0]]))
    expected = torch.ones(6, 8)
    expected[2:5, 1:4] = 0.0  # (1, 2, 3, 4) after truncation; x2 column and y2 row included
    assert torch.equal(mask, expected)

    mask = background_mask(6, 8, torch.tensor([[-3.5, -1.0, 100.0, 0.5]]))
    expected = torch.ones(6, 8)
    expected[0, :] = 0.0  # x1,y1 -> 0; x2 -> 8 (whole width); y2 = int(0.5) = 0 (row 0 only)
    assert torch.equal(mask, expected)

    union = background_mask(4, 4, torch.tensor([[0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0]]))
    assert union.sum() == 14 and union[0, 0] == 0 and union[3, 3] == 0
    assert torch.equal(background_mask(4, 4, torch.zeros(0, 4)), torch.ones(4, 4))


def test_background_mask_matches_reference_pil_drawing():
    from PIL import ImageDraw

    boxes = torch.tensor([[5.3, 7.9, 20.2, 11.0], [30.0, 0.0, 40.7, 39.99]])
    ref = Image.new("L", (40, 40), 255)
    draw = ImageDraw.Draw(ref)
    for box in boxes:
        draw.rectangle(list(box_to_pixels(box, 40, 40)), fill=0)
    assert torch.equal(background_mask(40, 40, boxes), torch.from_numpy(np.array(ref) / 255.0).float())


def test_patch_weights_are_unmasked_fractions_per_patch():
    mask = torch.ones(32, 32)
    mask[0:16, 0:8] = 0.0    # half of patch (0, 0)
    mask[16:32, 16:28] = 0.0  # 12 of 16 columns of patch (1, 1)
    torch.testing.assert_close(patch_weights(mask, (32, 32), (2, 2)), torch.tensor([0.5, 1.0, 1.0, 0.25]))

    small = torch.ones(16, 16)
    small[0:8, 0:4] = 0.0  # the same layout at half resolution, upsampled x2 (nearest) to the input
    torch.testing.assert_close(patch_weights(small, (32, 32), (2, 2)), torch.tensor([0.5, 1.0, 1.0, 1.0]))
    assert torch.equal(patch_weights(torch.ones(50, 50), (30, 30), (4, 4)), torch.ones(16))


def test_patch_weights_resize_the_mask_like_pil_nearest():
    # 512 -> 224 hits exact half-pixel positions where PIL and torch's nearest modes differ.
    mask = (torch.rand(512, 512, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    pil = Image.fromarray((mask.numpy() * 255).astype(np.uint8), mode="L").resize((224, 224), Image.NEAREST)
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(np.array(pil) / 255.0).float()[None, None], 16)
    torch.testing.assert_close(patch_weights(mask, (224, 224), (14, 14)), expected.reshape(-1))


def test_masked_global_cosine_weights_normalised_tokens_and_drops_low_weights():
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]]])
    b = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [-1.0, 1.0]]])
    # token 2 differs but its weight 0.4 < 0.5 is dropped; the rest agree after L2 normalisation
    torch.testing.assert_close(masked_global_cosine(a, b, torch.tensor([[1.0, 0.5, 0.4]])), torch.tensor([1.0]))
    # with no threshold it counts: f_a ~ [1 + .4 s, .5 + .4 s], f_b ~ [1 - .4 s, .5 + .4 s], s = 1/sqrt(2)
    s = 1.0 / math.sqrt(2.0)
    fa, fb = (1 + 0.4 * s, 0.5 + 0.4 * s), (1 - 0.4 * s, 0.5 + 0.4 * s)
    expected = (fa[0] * fb[0] + fa[1] * fb[1]) / (math.hypot(*fa) * math.hypot(*fb))
    torch.testing.assert_close(masked_global_cosine(a, b, torch.tensor([[1.0, 0.5, 0.4]]), threshold=0.0),
                               torch.tensor([expected]))


def test_masked_global_cosine_soft_weights_and_all_dropped():
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    b = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    # row 0: f_a = [1, .5]/1.5, f_b = [1.5, 0]/1.5 -> 1/sqrt(1.25); row 1: every weight < 0.5 -> 0
    got = masked_global_cosine(a, b, torch.tensor([[1.0, 0.5], [0.2, 0.3]]))
    torch.testing.assert_close(got, torch.tensor([1.0 / math.sqrt(1.25), 0.0]))


def test_combine_cc_is_the_mean_of_the_present_terms():
    assert combine_cc(0.8, 0.6) == pytest.approx(0.7)
    assert combine_cc(None, 0.6) == 0.6
    assert combine_cc(0.8, None) == 0.8
    assert combine_cc(None, None) is None


def test_image_conversion_and_crops():
    u8 = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pil = Image.fromarray(u8.permute(1, 2, 0).numpy())
    assert torch.equal(to_uint8_chw(pil), u8)
    assert torch.equal(to_uint8_chw(u8.float() / 255.0), u8)
    assert torch.equal(to_uint8_chw(pil.convert("L")), to_uint8_chw(pil.convert("L").convert("RGB")))
    with pytest.raises(ValueError, match="lie in"):
        to_uint8_chw(u8.float() / 255.0 * 2 - 1)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        to_uint8_chw(u8.permute(1, 2, 0))

    assert torch.equal(crop_box(u8, torch.tensor([1.9, 2.5, 4.2, 4.99])), u8[:, 2:4, 1:4])
    assert crop_box(u8, torch.tensor([3.2, 3.0, 3.9, 3.0])).shape == (3, 1, 1)  # widened to 1 px
    assert resize_square(u8, 5).shape == (3, 5, 5)
    assert torch.equal(resize_square(u8[:, :5, :5], 5), u8[:, :5, :5])
    expected = torch.from_numpy(np.array(pil.resize((5, 5), Image.Resampling.LANCZOS))).permute(2, 0, 1)
    assert torch.equal(resize_square(u8, 5), expected)
