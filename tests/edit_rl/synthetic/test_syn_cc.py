"""EdiVal-CC on the synthetic world: the real EdivalCC path with the colour-segmentation detector
and the fixed features."""
import numpy as np
import pytest
import torch

from edit_rl.consistency import Chain, EdivalCC, PairSpec, TurnSpec
from edit_rl.data import turn_specs
from edit_rl.synthetic import ObjectDesc, Scene, SceneObject, generate_chain, render
from edit_rl.synthetic.cc import ColorSegmentationDetector, FixedFeatures, foreground_view, synthetic_cc
from edit_rl.synthetic.world import OBJECT_COLORS

RED_CIRCLE = SceneObject(0, 0, ObjectDesc("large", "red", "circle"))
BLUE_SQUARE = SceneObject(1, 1, ObjectDesc("small", "blue", "square"))
GREEN_TRIANGLE = SceneObject(2, 2, ObjectDesc("large", "green", "triangle"))
BASE = Scene("white", (RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE))


def chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def cc() -> EdivalCC:
    return synthetic_cc()


def test_detector_returns_tight_boxes_of_the_named_objects_only():
    boxes = ColorSegmentationDetector().detect(
        [chw(render(BASE)), chw(render(BASE))],
        [["large green triangle", "large red circle", "large blue circle"], []])
    assert boxes[0].tolist() == [[21.0, 21.0, 30.0, 30.0], [1.0, 1.0, 10.0, 10.0]]
    assert boxes[1].shape == (0, 4)


def test_features_are_fixed_and_blind_to_the_background_colour_only():
    images = [chw(render(BASE)), chw(render(Scene("black", BASE.objects)))]
    a, b = FixedFeatures(seed=0).extract(images), FixedFeatures(seed=0).extract(images)
    assert torch.equal(a.cls, b.cls) and torch.equal(a.patches, b.patches)
    assert a.cls.shape == (2, 64) and a.patches.shape == (2, 32, 32, 64)
    assert torch.equal(a.patches[0], a.patches[1])  # only the background differs
    assert not torch.equal(FixedFeatures(seed=1).extract(images[:1]).cls, a.cls[:1])
    smudge = render(BASE)
    smudge[15, 3] = (90, 200, 90)  # off-palette pixels stay visible
    assert not np.array_equal(foreground_view(smudge), foreground_view(render(BASE)))


@pytest.mark.parametrize("pairing", ["consecutive", "reference"])
def test_perfect_chains_have_cc_1(cc, pairing):
    chains, kinds = [], set()
    for seed in range(60):
        chain = generate_chain(seed)
        outputs = [chw(render(Scene.from_json(t.target_state))) for t in chain.turns]
        chains.append(Chain([chain.load_image(), *outputs], turn_specs(chain.turns, pairing)))
        kinds |= {t.task_type for t in chain.turns}
    assert len(kinds) == 7
    scores = [p for pairs in cc.score_chains(chains, pairing) for p in pairs]
    measured = [p.cc for p in scores if p.cc is not None]
    assert len(measured) > 0.95 * len(scores)
    assert min(measured) == pytest.approx(1.0, abs=1e-6)
    assert max(measured) == pytest.approx(1.0, abs=1e-6)


def _pair(cc, output: np.ndarray, unchanged: tuple[str, ...]):
    spec = TurnSpec(unchanged, BASE.names + ("large yellow circle",), True)
    return cc.score_pairs([PairSpec(chw(render(BASE)), chw(output), spec)])[0]


def test_failures_lower_cc(cc):
    """Turn "Change the color of the large red circle to yellow" (the square and triangle must
    stay): a perfect output has CC 1; damage to an unchanged object lowers the object term, junk in
    the background the background term (pooled over ~800 background pixels, 56 junk pixels
    move it only slightly: EdiVal's global pooling)."""
    unchanged = ("small blue square", "large green triangle")
    yellow = SceneObject(0, 0, ObjectDesc("large", "yellow", "circle"))
    perfect = _pair(cc, render(Scene("white", (yellow, BLUE_SQUARE, GREEN_TRIANGLE))), unchanged)
    assert perfect.object_scores == pytest.approx((1.0, 1.0), abs=1e-6)
    assert perfect.background_score == pytest.approx(1.0, abs=1e-6)
    recoloured = SceneObject(2, 2, ObjectDesc("large", "cyan", "triangle"))
    damaged = _pair(cc, render(Scene("white", (yellow, BLUE_SQUARE, recoloured))), unchanged)
    assert damaged.object_scores[0] == pytest.approx(1.0, abs=1e-6)  # the square
    assert damaged.object_scores[1] < 0.6  # the triangle, now cyan
    reshaped = SceneObject(2, 2, ObjectDesc("large", "green", "square"))
    assert _pair(cc, render(Scene("white", (yellow, BLUE_SQUARE, reshaped))), unchanged).object_scores[1] < 0.95
    junk = render(Scene("white", (yellow, BLUE_SQUARE, GREEN_TRIANGLE)))
    junk[12:20, 2:9] = OBJECT_COLORS["purple"]
    noisy = _pair(cc, junk, unchanged)
    assert noisy.object_scores == pytest.approx((1.0, 1.0), abs=1e-6) and noisy.background_score < 0.998
