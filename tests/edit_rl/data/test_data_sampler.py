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
    first = _ids(a.next(10) + a.next(10) + a.next(10))
    assert first == _ids(b.next(10) + b.next(10) + b.next(10))
    for epoch in range(3):
        block = first[10 * epoch:10 * epoch + 10]
        assert sorted(block) == sorted(_ids(CHAINS))
        assert block == [f"c{i}" for i in epoch_order(10, 3, epoch)]
    assert first[:10] != first[10:20]  # every epoch reshuffles
    assert _ids(ChainSampler(CHAINS, seed=4).next(10)) != first[:10]


def test_banned_ids_are_skipped_and_consumed():
    plain, banning = ChainSampler(CHAINS, seed=0), ChainSampler(CHAINS, seed=0)
    order = _ids(plain.next(10) + plain.next(10))
    banned = {"c1", "c5", "c7"}
    got = _ids(banning.next(6, banned))
    assert got == [c for c in order if c not in banned][:6]
    assert not banned & set(got)
    allowed_positions = [i for i, c in enumerate(order) if c not in banned]
    consumed = allowed_positions[5] + 1  # up to and including the 6th allowed chain
    state = banning.state_dict()
    assert (state["epoch"], state["position"]) == divmod(consumed, 10)
    assert _ids(banning.next(1)) == [order[consumed]]  # banned chains after it were not consumed


def test_a_call_across_epochs_skips_a_chain_it_already_holds():
    """6 + 6 of 10 chains: the second call takes epoch 0's last 4 and then epoch 1's order, skipping
    (and consuming) the ones among those 4 that epoch 1 brings back."""
    sampler = ChainSampler(CHAINS, seed=5)
    e0 = [f"c{i}" for i in epoch_order(10, 5, 0)]
    e1 = [f"c{i}" for i in epoch_order(10, 5, 1)]
    assert _ids(sampler.next(6)) == e0[:6]
    second = _ids(sampler.next(6))
    assert len(set(second)) == 6
    tail, rest = e0[6:], [c for c in e1 if c not in e0[6:]]
    assert second == tail + rest[:2]
    assert sampler.state_dict()["position"] == e1.index(rest[1]) + 1


def test_too_few_allowed_chains_raise_without_consuming():
    sampler = ChainSampler(CHAINS, seed=0)
    with pytest.raises(ValueError, match=r"10 distinct chains requested, but 1 of the 10 chains are banned \(9 left\)"):
        sampler.next(10, {"c3"})
    with pytest.raises(ValueError, match="11 distinct chains requested"):
        sampler.next(11)
    assert sampler.state_dict()["position"] == 0
    assert sorted(_ids(sampler.next(9, {"c3"}))) == sorted(set(_ids(CHAINS)) - {"c3"})


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
    expected = [_ids(original.next(8, {"c4"})) for _ in range(3)]
    resumed = ChainSampler(CHAINS, seed=11)
    resumed.load_state_dict(state)
    assert [_ids(resumed.next(8, {"c4"})) for _ in range(3)] == expected


def test_resume_refuses_other_chains_or_seed():
    state = ChainSampler(CHAINS, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved over other chains"):
        ChainSampler(CHAINS[::-1], seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed 1, this sampler 2"):
        ChainSampler(CHAINS, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="unique"):
        ChainSampler(CHAINS + CHAINS[:1], seed=0)
