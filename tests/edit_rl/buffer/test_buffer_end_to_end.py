"""One driver step through the whole buffer: expect, shuffled at-least-once deliveries, a group
given up on, pop, batch, shard; then the NFT loss accepts the padding weights as its mask."""
import json
import random

import torch

from edit_rl.buffer import GroupAssembler, Rollout, build_training_batch, shard_samples
from edit_rl.config.schema import FilterConfig, RewardConfig
from edit_rl.objectives import nft_loss
from edit_rl.rewards import PromptBanList

G, T = 4, 3


def test_one_step_from_deliveries_to_rank_micro_batches():
    rng = random.Random(0)
    asm = GroupAssembler(G, T)
    chains = ["c0", "c1", "c2"]
    asm.expect(5, chains)
    events = []
    for c, chain in enumerate(chains):
        for g in range(G):
            rid = f"5/{chain}/{g}"
            if chain == "c2" and g == 3:
                continue  # this worker never comes back
            ro = Rollout(rid, chain, g, 5, 4 + g % 2, tuple(f"{rid}#{k}" for k in range(T)))
            if_s = [1.0 + ((c + g + k) % 5) for k in range(T)]
            cc_s = [0.5 + 0.1 * ((g + k) % 3) for k in range(T)]
            events.append((0, lambda ro=ro: asm.add_rollout(ro)))
            events.append((1, lambda rid=rid, s=if_s: asm.add_if_scores(rid, s)))
            events.append((1, lambda rid=rid, s=cc_s: asm.add_cc_scores(rid, s, fallback=[k == 0 for k in range(T)])))
    events += rng.sample(events, 10)  # retried tasks deliver a second time
    rng.shuffle(events)
    events.sort(key=lambda e: e[0])  # scores only after rollouts; otherwise any order
    for _, deliver in events:
        deliver()
    assert asm.counters.duplicate_rollouts + asm.counters.duplicate_if_scores + asm.counters.duplicate_cc_scores == 10

    groups = asm.pop_ready()
    dropped = asm.drop_incomplete("rollout timeout")
    assert [g.chain_id for g in groups] == ["c0", "c1"] and [d.chain_id for d in dropped] == ["c2"]
    json.dumps(asm.state_dict())

    batch = build_training_batch(groups, RewardConfig(), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=6, policy_version=6)
    assert len(batch.samples) == 2 * G * T and batch.stats.cc_fallback_turns == 2 * G
    assert batch.stats.staleness_max == 2 and batch.stats.staleness_mean == 1.5

    out = shard_samples(batch.samples, num_ranks=5, micro_batch_size=2)
    assert out.num_micro_batches == 3 and out.num_padding == 5 * 6 - 24
    assert all(s.weight == 0.0 for s in out.ranks[4][2])  # rank 4: samples 4, 9, 14, 19 + 2 padding
    # Each micro-batch feeds the loss with weight as the mask; an all-padding one gives exact 0.
    for mb in out.ranks[4]:
        b = len(mb)
        x0, v, xt = torch.randn(b, 4), torch.randn(b, 4), torch.randn(b, 4)
        loss = nft_loss(v.requires_grad_(), v.detach(), xt, x0, torch.full((b,), 0.5),
                        torch.tensor([s.r for s in mb]), mask=torch.tensor([s.weight for s in mb]))
        assert torch.isfinite(loss.total)
        if all(s.weight == 0.0 for s in mb):
            assert loss.total.item() == 0.0
