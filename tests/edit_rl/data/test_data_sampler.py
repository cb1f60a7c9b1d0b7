"""ChainSampler: deterministic epoch shuffles, ban skipping, exact resume."""
import pytest
from PIL import Image

from edit_rl.data import ChainSampler, ChainTurn, EditChain, encode_png, epoch_order

PNG = encode_png(Image.new("RGB", (2, 2)))
CHAINS = [EditChain(f"c{i}", (ChainTurn("Remove the large red circle.", "subject_remove", (), (), True),),
                    None, PNG, "t") for i in range(10)]


def _ids(chains):
    return [c.chain_id for c in chains]


def test_same_seed_same_order_each_epoch_a_permutation():
    a, b = ChainSampler(CHAINS, seed=3), ChainSampler(CHAINS, seed=3)
    first = _ids(a.next(30))
    assert first == _ids(b.next(30))
    for epoch in range(3):
        block = first[10 * epoch:10 * epoch + 10]
        assert sorted(block) == sorted(_ids(CHAINS))
        assert block == [f"c{i}" for i in epoch_order(10, 3, epoch)]
    assert first[:10] != first[10:20]  # every epoch reshuffles
    assert _ids(ChainSampler(CHAINS, seed=4).next(10)) != first[:10]


def test_banned_ids_are_skipped_and_consumed():
    plain, banning = ChainSampler(CHAINS, seed=0), ChainSampler(CHAINS, seed=0)
    order = _ids(plain.next(20))
    banned = {"c1", "c5", "c7"}
    got = _ids(banning.next(14, banned))
    assert got == [c for c in order if c not in banned][:14]
    assert not banned & set(got)
    allowed_positions = [i for i, c in enumerate(order) if c not in banned]
    consumed = allowed_positions[13] + 1  # up to and including the 14th allowed chain
    state = banning.state_dict()
    assert (state["epoch"], state["position"]) == divmod(consumed, 10)
    assert _ids(banning.next(1)) == [order[consumed]]  # banned chains after it were not consumed


def test_all_banned_raises_without_consuming():
    sampler = ChainSampler(CHAINS, seed=0)
    with pytest.raises(ValueError, match="all 10 chains are banned"):
        sampler.next(1, set(_ids(CHAINS)))
    assert sampler.state_dict()["position"] == 0
    assert sampler.next(0, set(_ids(CHAINS))) == []


def test_state_dict_resumes_exactly():
    original = ChainSampler(CHAINS, seed=11)
    original.next(7, {"c2"})
    state = original.state_dict()
    expected = _ids(original.next(25, {"c4"}))
    resumed = ChainSampler(CHAINS, seed=11)
    resumed.load_state_dict(state)
    assert _ids(resumed.next(25, {"c4"})) == expected


def test_resume_refuses_other_chains_or_seed():
    state = ChainSampler(CHAINS, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved over other chains"):
        ChainSampler(CHAINS[::-1], seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed 1, this sampler 2"):
        ChainSampler(CHAINS, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="unique"):
        ChainSampler(CHAINS + CHAINS[:1], seed=0)
