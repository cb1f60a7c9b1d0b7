"""The real code path end to end: tiny Grounding DINO + tiny DINOv3 loaded by name from the config,
a batch of 64x64 three-turn chains (pairings are checked in test_cc_pairs.py)."""

import math

import pytest
import torch

from edit_rl.config.schema import ConfigError, ConsistencyConfig
from edit_rl.consistency import Chain, EdivalCC, PairSpec, TurnSpec, benchmark_cc
from edit_rl.consistency.build import build_consistency

TURNS = [TurnSpec(("red square",), ("red square", "blue circle"), True),
         TurnSpec(("blue circle",), ("red square", "blue circle", "cat"), True),
         TurnSpec((), ("red square",), False)]


@pytest.fixture(scope="module")
def edival_cc() -> EdivalCC:
    config = ConsistencyConfig(detector="tiny/grounding-dino", features="tiny/dinov3", image_size=64)
    config.validate()
    return build_consistency(config)


@pytest.mark.slow
def test_tiny_models_score_a_batch_of_chains(edival_cc):
    generator = torch.Generator().manual_seed(0)
    edited = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=generator) for _ in range(4)]
    still = [edited[0]] * 4  # an editor that changes nothing
    results = edival_cc.score_chains([Chain(edited, TURNS), Chain(still, TURNS)], "consecutive")
    assert [len(r) for r in results] == [3, 3]
    for chain in results:
        for turn, result in zip(TURNS, chain):
            assert len(result.object_scores) == len(result.object_boxes)
            if turn.unchanged_objects:
                assert len(result.object_boxes) > 0 and -1 <= result.object_score <= 1
            assert torch.all((result.background_boxes >= 0) & (result.background_boxes <= 64))
        assert chain[2].background_score is None and chain[2].cc is None  # no unchanged objects either
    for result in results[1][:2]:  # nothing changed: every cosine is 1
        assert result.object_score == pytest.approx(1.0, abs=1e-5)
        assert result.background_score == pytest.approx(1.0, abs=1e-5)
        assert result.cc == pytest.approx(1.0, abs=1e-5)
    for result in results[0][:2]:  # random images in place of edits score lower
        assert result.cc < 0.99 and math.isfinite(result.cc)
    assert benchmark_cc([r for chain in results for r in chain]).num_pairs == 4

    # batching changes nothing: the pairs scored one by one give the same numbers and boxes
    alone = [edival_cc.score_pairs([PairSpec(edited[k], edited[k + 1], TURNS[k])])[0] for k in range(2)]
    for b, a in zip(results[0], alone):
        torch.testing.assert_close(b.object_boxes, a.object_boxes)
        torch.testing.assert_close(b.background_boxes, a.background_boxes)
        assert b.cc == pytest.approx(a.cc, abs=1e-5)


def test_config_validates_the_new_fields():
    with pytest.raises(ConfigError, match="consistency.batch_size"):
        ConsistencyConfig(batch_size=0).validate()
    with pytest.raises(ConfigError, match="consistency.pairing"):
        ConsistencyConfig(pairing="all").validate()  # type: ignore[arg-type]
    assert ConsistencyConfig().pairing == "consecutive"
