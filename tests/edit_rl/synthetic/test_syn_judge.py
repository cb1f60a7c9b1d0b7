"""The verifiable judge: every rubric level, through the judge interface."""
import numpy as np
import pytest
import torch

from edit_rl.judge import SCALE_1_5, JudgeRequest, JudgeResult, ScoringStats
from edit_rl.judge.scoring import parse_turn_answers
from edit_rl.synthetic import ObjectDesc, Scene, SceneObject, SyntheticJudge, generate_chain, render
from edit_rl.synthetic.rubric import JUNK_TOLERANCE_PIXELS
from edit_rl.synthetic.world import OBJECT_COLORS

RED_CIRCLE = SceneObject(0, 0, ObjectDesc("large", "red", "circle"))
BLUE_SQUARE = SceneObject(1, 1, ObjectDesc("small", "blue", "square"))
GREEN_TRIANGLE = SceneObject(2, 2, ObjectDesc("large", "green", "triangle"))
BASE = Scene("white", (RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE))


def obj(row, col, size, color, shape):
    return SceneObject(row, col, ObjectDesc(size, color, shape))


def scene(*objects, background="white"):
    return Scene(background, objects)


def with_junk(image, pixels, color="purple"):
    """Stray pixels of one colour along the bottom margin row (cells (2, x), off every object)."""
    image = image.copy()
    for i in range(pixels):
        image[31, 2 + 3 * i] = OBJECT_COLORS[color]
    return image


def judge_one(instruction, output, before=BASE):
    out = render(output) if isinstance(output, Scene) else output
    result = SyntheticJudge().score([JudgeRequest(render(before), (out,), (instruction,))])[0]
    return int(result.values[0])


YELLOW_CIRCLE = obj(0, 0, "large", "yellow", "circle")
CASES = {
    "Change the color of the large red circle to yellow.": [
        ("perfect", scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE), 5),
        ("unchanged", BASE, 1),
        ("wrong colour", scene(obj(0, 0, "large", "purple", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("right colour, wrong shape", scene(obj(0, 0, "large", "yellow", "square"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("right colour, wrong size", scene(obj(0, 0, "small", "yellow", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("collateral: square removed", scene(YELLOW_CIRCLE, GREEN_TRIANGLE), 3),
        ("collateral: background", scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE, background="gray"), 3),
        ("collateral: extra object", scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE, obj(0, 2, "small", "cyan",
                                                                                          "circle")), 3),
    ],
    "Remove the small blue square.": [
        ("perfect", scene(RED_CIRCLE, GREEN_TRIANGLE), 5),
        ("unchanged", BASE, 1),
        ("remnant", scene(RED_CIRCLE, obj(1, 1, "small", "blue", "circle"), GREEN_TRIANGLE), 2),
        ("wrong object removed", scene(RED_CIRCLE, BLUE_SQUARE), 1),
    ],
    "Add a small yellow circle to the right of the large red circle.": [
        ("perfect", scene(RED_CIRCLE, obj(0, 1, "small", "yellow", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 5),
        ("unchanged", BASE, 1),
        ("wrong position", scene(RED_CIRCLE, obj(1, 0, "small", "yellow", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("wrong size", scene(RED_CIRCLE, obj(0, 1, "large", "yellow", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("wrong shape", scene(RED_CIRCLE, obj(0, 1, "small", "yellow", "square"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
    ],
    "Replace the large green triangle with a large green square.": [
        ("perfect", scene(RED_CIRCLE, BLUE_SQUARE, obj(2, 2, "large", "green", "square")), 5),
        ("unchanged", BASE, 1),
        ("wrong shape", scene(RED_CIRCLE, BLUE_SQUARE, obj(2, 2, "large", "green", "circle")), 2),
        ("wrong colour", scene(RED_CIRCLE, BLUE_SQUARE, obj(2, 2, "large", "cyan", "square")), 2),
    ],
    "Move the large red circle to the left of the small blue square.": [
        ("perfect", scene(obj(1, 0, "large", "red", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 5),
        ("unchanged", BASE, 1),
        ("wrong position", scene(obj(0, 1, "large", "red", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("copy left behind", scene(RED_CIRCLE, obj(1, 0, "large", "red", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
        ("arrived as a square", scene(obj(1, 0, "large", "red", "square"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
    ],
    "Change the background to black.": [
        ("perfect", scene(RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE, background="black"), 5),
        ("unchanged", BASE, 1),
        ("wrong background", scene(RED_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE, background="gray"), 2),
        ("collateral: triangle lost", scene(RED_CIRCLE, BLUE_SQUARE, background="black"), 3),
    ],
    "Make the large red circle small.": [
        ("perfect", scene(obj(0, 0, "small", "red", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 5),
        ("unchanged", BASE, 1),
        ("right size, wrong colour", scene(obj(0, 0, "small", "yellow", "circle"), BLUE_SQUARE, GREEN_TRIANGLE), 2),
    ],
}


@pytest.mark.parametrize("instruction,label,output,expected",
                         [(i, label, out, score) for i, cases in CASES.items() for label, out, score in cases],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_rubric_levels(instruction, label, output, expected):
    assert judge_one(instruction, output) == expected, label


def test_junk_pixels_score_4_above_the_tolerance_and_3_with_collateral():
    perfect = render(scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE))
    instruction = "Change the color of the large red circle to yellow."
    assert judge_one(instruction, with_junk(perfect, JUNK_TOLERANCE_PIXELS)) == 5
    assert judge_one(instruction, with_junk(perfect, JUNK_TOLERANCE_PIXELS + 1)) == 4
    assert judge_one(instruction, with_junk(perfect, 6, color="cyan")) == 4
    damaged = render(scene(YELLOW_CIRCLE, GREEN_TRIANGLE))
    assert judge_one(instruction, with_junk(damaged, 5)) == 3


def test_shape_melted_into_a_blob_of_the_right_colour_scores_2():
    image = render(scene(BLUE_SQUARE, GREEN_TRIANGLE))
    image[2:6, 1:10] = OBJECT_COLORS["yellow"]  # a yellow bar where the circle was
    assert judge_one("Change the color of the large red circle to yellow.", image) == 2


def test_a_failed_turn_dooms_the_turns_that_name_its_result():
    """Turn 1 leaves the circle red; turn 2 names "the large yellow circle", which is not in its
    input: 1, whatever turn 2's output is (here it even removes the red circle)."""
    images = (render(BASE), render(scene(BLUE_SQUARE, GREEN_TRIANGLE)))
    instructions = ("Change the color of the large red circle to yellow.", "Remove the large yellow circle.")
    judge = SyntheticJudge()
    result = judge.score([JudgeRequest(render(BASE), images, instructions)])[0]
    assert result.values == [1.0, 1.0]
    verdict = judge.verdicts(JudgeRequest(render(BASE), images, instructions))[1]
    assert verdict.reason == "not applicable to the input: no large yellow circle in the scene"
    # The same turn 2 after a successful turn 1 scores 5.
    good = (render(scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE)), render(scene(BLUE_SQUARE, GREEN_TRIANGLE)))
    assert judge.score([JudgeRequest(render(BASE), good, instructions)])[0].values == [5.0, 5.0]


def test_perfect_chains_score_5_everywhere_and_keep_the_judge_result_contract():
    judge = SyntheticJudge()
    chains = [generate_chain(seed) for seed in range(40)]
    requests = []
    for i, chain in enumerate(chains):
        outputs = [render(Scene.from_json(t.target_state)) for t in chain.turns]
        if i % 2:  # the service may hand over float tensors (3, H, W) in [0, 1]
            outputs = [torch.from_numpy(o).permute(2, 0, 1).float() / 255 for o in outputs]
        requests.append(JudgeRequest(chain.load_image(), tuple(outputs), chain.instructions))
    results = judge.score(requests)
    assert all(isinstance(r, JudgeResult) for r in results)
    for result in results:
        assert result.values == [5.0, 5.0, 5.0] and result.normalized == [1.0, 1.0, 1.0] and not result.fallback
        assert all(t.probs == (0.0, 0.0, 0.0, 0.0, 1.0) and t.mass == 1.0 for t in result.turns)
        assert [t.value for t in parse_turn_answers(result.response, SCALE_1_5, 3)] == result.values
    assert judge.stats == ScoringStats(requests=40, turns=120, fallback_requests=0, fallback_turns=0)


def test_unchanged_outputs_score_1_and_unknown_instructions_fall_back():
    judge = SyntheticJudge()
    chain = generate_chain(5)
    reference = np.asarray(chain.load_image())
    result = judge.score([JudgeRequest(reference, (reference,) * 3, chain.instructions)])[0]
    assert result.values == [1.0, 1.0, 1.0] and result.normalized == [0.0, 0.0, 0.0]
    odd = judge.score([JudgeRequest(reference, (reference,), ("Make it look vintage.",))])[0]
    assert odd.fallback and odd.values == [1.0] and "fallback" in odd.response
    assert judge.stats == ScoringStats(requests=2, turns=4, fallback_requests=1, fallback_turns=1)


def test_logit_scoring_grades_a_dirty_right_edit_by_its_junk_and_leaves_the_rest_as_sampled():
    perfect = render(scene(YELLOW_CIRCLE, BLUE_SQUARE, GREEN_TRIANGLE))
    instruction = "Change the color of the large red circle to yellow."
    outputs = [with_junk(perfect, n) for n in (0, 2, 3, 4, 10)] + [render(BASE), render(scene(YELLOW_CIRCLE))]
    requests = [JudgeRequest(render(BASE), (out,), (instruction,)) for out in outputs]
    sampled = [r.values[0] for r in SyntheticJudge("sampled").score(requests)]
    graded = SyntheticJudge("logit").score(requests)
    assert sampled == [5.0, 5.0, 4.0, 4.0, 4.0, 1.0, 3.0]
    # tau = 2 junk pixels: p5 = 2 / J, s = 4 + p5 (hand-computed: 3 -> 4.667, 4 -> 4.5, 10 -> 4.2)
    assert [r.values[0] for r in graded] == pytest.approx([5.0, 5.0, 4 + 2 / 3, 4.5, 4.2, 1.0, 3.0])
    assert graded[2].turns[0].probs == pytest.approx((0, 0, 0, 1 / 3, 2 / 3))
    assert graded[2].turns[0].normalized == pytest.approx((4 + 2 / 3 - 1) / 4)
    assert graded[3].response == '"Turn 1": [[4]] edit done, rest kept, 4 junk pixels'
    assert all(r.turns[0].value < 5 for r in graded[2:])  # no dirty image passes: success is unchanged


def test_the_judge_service_config_picks_the_scoring_and_rejects_yes_no():
    from edit_rl.config import ConfigError
    from edit_rl.config.schema import JudgeConfig
    from edit_rl.judge.build import build_judge

    assert build_judge(JudgeConfig(backend="synthetic", scoring="sampled")).scoring == "sampled"
    assert build_judge(JudgeConfig(backend="synthetic")).scoring == "logit"
    with pytest.raises(ConfigError, match="scoring"):
        JudgeConfig(backend="synthetic", scoring="yes_no").validate()
    with pytest.raises(ValueError, match="yes_no"):
        SyntheticJudge("yes_no")
