"""EdivalCC with a box-injecting detector double and the tiny DINOv3 (64x64 input): the terms react to the
right regions, background skipping, both pairings, batching (edit_rl/consistency/edival_cc.py)."""

import pytest
import torch
from PIL import Image

from edit_rl.consistency import (
    Chain,
    EdivalCC,
    PairConsistency,
    PairSpec,
    TurnSpec,
    benchmark_cc,
    pair_indices,
)

CAT_BOX = [16.0, 16.0, 32.0, 32.0]  # crop [16, 32) x [16, 32): exactly patch (1, 1) of a 64x64 image
DOG_BOX = [40.0, 4.0, 60.0, 20.0]
TURN = TurnSpec(unchanged_objects=("cat",), all_objects=("cat", "dog"), check_background=True)


def _noise(seed: int, first_pixel: int) -> torch.Tensor:
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    image[0, 0, 0] = first_pixel
    return image


def test_identical_images_give_cc_one(box_detector, fast_features, base_image):
    cc = EdivalCC(box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]}), fast_features, image_size=64)
    [result] = cc.score_pairs([PairSpec(base_image, base_image.clone(), TURN)])
    assert result.object_score == pytest.approx(1.0, abs=1e-5)
    assert len(result.object_scores) == 1
    assert result.background_score == pytest.approx(1.0, abs=1e-5)
    assert result.cc == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(result.object_boxes, torch.tensor([CAT_BOX]))
    assert torch.equal(result.background_boxes, torch.tensor([CAT_BOX, DOG_BOX, CAT_BOX, DOG_BOX]))


def test_changed_background_lowers_only_the_background_term(box_detector, fast_features, base_image):
    edited = base_image.clone()
    edited[:, 40:64, 0:36] = 255 - edited[:, 40:64, 0:36]  # outside both boxes
    cc = EdivalCC(box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]}), fast_features, image_size=64)
    [result] = cc.score_pairs([PairSpec(base_image, edited, TURN)])
    assert result.object_score == pytest.approx(1.0, abs=1e-5)  # the cat crop is untouched
    assert result.background_score < 0.99
    assert result.cc == pytest.approx((1.0 + result.background_score) / 2, abs=1e-5)


def test_changed_object_lowers_only_the_object_term(box_detector, local_features, base_image):
    # 0-layer DINOv3 on 64x64 inputs: the cat box covers patch (1, 1), masked from the background
    # (weight 0); its neighbours lose 1/16 or 1/256 (inclusive PIL-style box) and keep their tokens.
    edited = base_image.clone()
    edited[:, 16:32, 16:32] = 255 - edited[:, 16:32, 16:32]
    cc = EdivalCC(box_detector({"cat": [CAT_BOX]}), local_features, image_size=64)
    turn = TurnSpec(("cat",), ("cat",), True)
    [result] = cc.score_pairs([PairSpec(base_image, edited, turn)])
    assert result.background_score == pytest.approx(1.0, abs=1e-6)
    assert result.object_score < 0.9
    # without the box, the changed patch enters the background term
    [unmasked] = EdivalCC(box_detector({}), local_features, image_size=64).score_pairs(
        [PairSpec(base_image, edited, turn)])
    assert unmasked.background_score < 0.999 and unmasked.object_score == 0.0


def test_object_term_follows_the_reference_edge_cases(box_detector, fast_features, base_image):
    cc = EdivalCC(box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]}), fast_features, image_size=64)
    edited = base_image.clone()
    edited[:, 40:64, 0:36] = 0
    no_unchanged, not_found, no_objects = cc.score_pairs([
        PairSpec(base_image, edited, TurnSpec((), ("cat", "dog"), True)),
        PairSpec(base_image, edited, TurnSpec(("unicorn",), ("cat", "dog"), True)),
        PairSpec(base_image, edited, TurnSpec((), (), True)),
    ])
    assert no_unchanged.object_score is None and no_unchanged.cc == no_unchanged.background_score
    assert not_found.object_score == 0.0  # listed but not detected: 0, as the reference
    assert not_found.cc == pytest.approx(not_found.background_score / 2)
    assert no_objects.background_score is None and no_objects.cc is None  # reference: no bg score


def test_background_skipped_on_background_change_turns(box_detector, fast_features, base_image):
    detector = box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]})
    cc = EdivalCC(detector, fast_features, image_size=64)
    edited = _noise(5, first_pixel=9)
    edited[:, 16:32, 16:32] = base_image[:, 16:32, 16:32]
    [result] = cc.score_pairs([PairSpec(base_image, edited, TurnSpec(("cat",), ("cat", "dog"), False))])
    assert result.background_score is None
    assert result.object_score == pytest.approx(1.0, abs=1e-5)
    assert result.cc == result.object_score
    assert detector.requests == [(7, ("cat",))]  # only the unchanged objects, in the source
    assert result.background_boxes.shape == (0, 4)


def test_benchmark_cc_skips_background_change_turns_entirely():
    empty = torch.zeros(0, 4)

    def pair(obj, bg, check):
        return PairConsistency(obj, (), bg, None, empty, empty, check)

    results = [pair(0.8, 0.6, True), pair(None, 0.9, True), pair(0.2, None, False), pair(0.4, 0.3, True)]
    summary = benchmark_cc(results)
    assert summary.num_pairs == 3
    assert summary.object_mean == pytest.approx((0.8 + 0.4) / 2)
    assert summary.background_mean == pytest.approx((0.6 + 0.9 + 0.3) / 3)
    assert summary.cc == pytest.approx(((0.8 + 0.4) / 2 + (0.6 + 0.9 + 0.3) / 3) / 2)


def test_pair_indices():
    assert pair_indices(3, "consecutive") == [(0, 1), (1, 2), (2, 3)]
    assert pair_indices(3, "reference") == [(0, 1), (0, 2), (0, 3)]
    with pytest.raises(ValueError):
        pair_indices(3, "all")


@pytest.mark.parametrize("pairing", ["consecutive", "reference"])
def test_chains_score_the_pairs_of_their_pairing(box_detector, fast_features, pairing):
    images = [_noise(seed, first_pixel=10 + seed) for seed in range(4)]  # image k starts with 10 + k
    turns = [TurnSpec(("cat",), ("cat", "dog"), True), TurnSpec(("dog",), ("cat", "dog"), True),
             TurnSpec(("cat",), ("cat",), False)]
    detector = box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]})
    cc = EdivalCC(detector, fast_features, image_size=64)
    [chain_results] = cc.score_chains([Chain(images, turns)], pairing)

    pairs = pair_indices(3, pairing)
    expected_requests = []
    for (s, t), turn in zip(pairs, turns):
        expected_requests.append((10 + s, turn.unchanged_objects))
        if turn.check_background:
            expected_requests += [(10 + s, turn.all_objects), (10 + t, turn.all_objects)]
    assert detector.requests == expected_requests and detector.calls == 1

    fresh = EdivalCC(box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX]}), fast_features, image_size=64)
    direct = fresh.score_pairs([PairSpec(images[s], images[t], turn) for (s, t), turn in zip(pairs, turns)])
    assert [r.cc for r in chain_results] == pytest.approx([r.cc for r in direct], abs=1e-5)
    assert chain_results[2].background_score is None


def test_many_pairs_in_one_forward_each_match_pairs_scored_alone(box_detector, fast_features):
    detector = box_detector({"cat": [CAT_BOX], "dog": [DOG_BOX, [0.0, 40.0, 12.0, 63.0]]})
    cc = EdivalCC(detector, fast_features, image_size=64)
    sources = [_noise(seed, first_pixel=seed) for seed in range(3)]
    targets = [s.clone() for s in sources]
    targets[0][:, 0:30, 0:30] = 0
    targets[2][:, 16:40, 20:64] = 255
    turns = [TURN, TurnSpec(("dog",), ("cat", "dog"), True), TurnSpec(("cat", "dog"), ("cat",), False)]
    pairs = [PairSpec(s, t, turn) for s, t, turn in zip(sources, targets, turns)]

    forwards = []
    handle = fast_features.model.register_forward_hook(lambda *args: forwards.append(1))
    try:
        batched = cc.score_pairs(pairs)
        assert len(forwards) == 1 and detector.calls == 1
        alone = [cc.score_pairs([pair])[0] for pair in pairs]
    finally:
        handle.remove()
    for b, a in zip(batched, alone):
        assert b.object_scores == pytest.approx(a.object_scores, abs=1e-5)
        assert (b.background_score is None) == (a.background_score is None)
        assert b.cc == pytest.approx(a.cc, abs=1e-5)
    assert len(batched[2].object_scores) == 3 and batched[2].background_score is None


def test_pil_uint8_and_float_inputs_agree_and_resize_to_image_size(box_detector, fast_features, base_image):
    cc = EdivalCC(box_detector({"cat": [[8.0, 8.0, 24.0, 24.0]]}), fast_features, image_size=32)
    edited = base_image.clone()
    edited[:, 40:, :] = 0
    as_pil = Image.fromarray(edited.permute(1, 2, 0).numpy())
    results = cc.score_pairs([PairSpec(base_image, edited, TURN),
                              PairSpec(base_image.float() / 255, as_pil, TURN)])
    assert results[0].cc == pytest.approx(results[1].cc, abs=1e-6)
    with pytest.raises(ValueError, match="differ in size"):
        EdivalCC(box_detector({}), fast_features, image_size=None).score_pairs(
            [PairSpec(base_image, base_image[:, :32], TURN)])
