"""shard_samples: every real sample exactly once with its weight, equal micro-batch counts on
every rank, full micro-batches, padding weight 0 and taken from the rank's own samples."""
from collections import Counter

import pytest

from edit_rl.buffer import TrainingSample, shard_samples


def samples(n: int) -> list[TrainingSample]:
    return [TrainingSample(f"r{i // 3}", "c", 0, (i // 3) % 4, i % 3, f"h{i}", 0.1 * i, 0.5, 1) for i in range(n)]


@pytest.mark.parametrize("n,ranks,mbs", [(0, 4, 2), (1, 4, 2), (3, 4, 1), (7, 3, 2), (12, 4, 3), (18, 8, 2),
                                         (864, 8, 2), (10, 1, 4)])
def test_sharding_invariants(n, ranks, mbs):
    real = samples(n)
    out = shard_samples(real, ranks, mbs)
    assert len(out.ranks) == ranks
    assert {len(r) for r in out.ranks} == {out.num_micro_batches}  # equal micro-batch counts (FSDP)
    assert all(len(mb) == mbs for r in out.ranks for mb in r)
    flat = [s for r in out.ranks for mb in r for s in mb]
    kept = [s for s in flat if s.weight == 1.0]
    pads = [s for s in flat if s.weight != 1.0]
    assert Counter(kept) == Counter(real)  # each real sample exactly once with weight 1, none lost
    assert all(s.weight == 0.0 for s in pads) and len(pads) == out.num_padding
    assert out.num_real == n and len(flat) == n + out.num_padding
    per_rank_real = [sum(s.weight for mb in r for s in mb) for r in out.ranks]
    assert max(per_rank_real) - min(per_rank_real) <= 1  # balanced
    assert out.num_micro_batches == -(-(-(-n // ranks)) // mbs)  # ceil(ceil(n / R) / mbs)
    for r in out.ranks:  # padding copies one of the rank's own samples when it has any
        own = {s.payload for mb in r for s in mb if s.weight == 1.0}
        pad_payloads = {s.payload for mb in r for s in mb if s.weight == 0.0}
        assert not own or pad_payloads <= own
    assert shard_samples(real, ranks, mbs) == out  # deterministic


def test_round_robin_layout_and_padding_for_seven_samples_on_three_ranks():
    real = samples(7)
    out = shard_samples(real, 3, 2)
    # rank r gets samples r, r + 3, r + 6; M = ceil(ceil(7 / 3) / 2) = 2 micro-batches of 2.
    layout = [[[(s.payload, s.weight) for s in mb] for mb in r] for r in out.ranks]
    assert layout == [
        [[("h0", 1.0), ("h3", 1.0)], [("h6", 1.0), ("h0", 0.0)]],
        [[("h1", 1.0), ("h4", 1.0)], [("h1", 0.0), ("h4", 0.0)]],
        [[("h2", 1.0), ("h5", 1.0)], [("h2", 0.0), ("h5", 0.0)]],
    ]
    assert (out.num_micro_batches, out.num_real, out.num_padding) == (2, 7, 5)
    assert real[0].weight == 1.0  # padding copies, the inputs are untouched


def test_ranks_without_real_samples_get_padding_from_others_and_bad_sizes_raise():
    out = shard_samples(samples(2), 4, 1)
    assert [[(s.payload, s.weight) for mb in r for s in mb] for r in out.ranks] == [
        [("h0", 1.0)], [("h1", 1.0)], [("h0", 0.0)], [("h1", 0.0)]]
    with pytest.raises(ValueError, match="num_ranks and micro_batch_size"):
        shard_samples(samples(2), 0, 1)
    with pytest.raises(ValueError, match="num_ranks and micro_batch_size"):
        shard_samples(samples(2), 2, 0)
