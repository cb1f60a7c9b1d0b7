"""GroupAssembler: out-of-order and duplicate deliveries, unknown ids, late stragglers, drops,
and an exact state round trip."""
import json
import logging
import math

import pytest

from edit_rl.buffer import GroupAssembler, Rollout, UnknownRolloutError

G, T = 2, 3


def rollout(chain: str, slot: int, step: int = 0, version: int = 7) -> Rollout:
    rid = f"s{step}/{chain}/{slot}"
    return Rollout(rid, chain, slot, step, version, tuple(f"{rid}/turn{k}" for k in range(T)))


def finish(asm: GroupAssembler, chain: str, slot: int, step: int = 0, base: float = 3.0) -> None:
    r = rollout(chain, slot, step)
    asm.add_rollout(r)
    asm.add_if_scores(r.rollout_id, [base, base + 1, base - 1])
    asm.add_cc_scores(r.rollout_id, [0.9, 0.8, 0.7])


def test_out_of_order_deliveries_complete_groups_in_slot_order():
    asm = GroupAssembler(G, T)
    asm.expect(0, ["a", "b"])
    a0, a1, b0, b1 = rollout("a", 0), rollout("a", 1), rollout("b", 0), rollout("b", 1)
    # Interleaved: slot 1 before slot 0, CC before IF, groups mixed.
    assert asm.add_rollout(a1)
    assert asm.add_rollout(b0)
    assert asm.add_cc_scores(a1.rollout_id, [0.5, 0.6, 0.7])
    assert asm.add_if_scores(b0.rollout_id, [1, 2, 3], fallback=[False, True, False])
    assert asm.add_rollout(a0)
    assert asm.add_if_scores(a1.rollout_id, [5, 4, 3])
    assert asm.pop_ready() == []
    assert asm.add_cc_scores(a0.rollout_id, [1.0, 1.0, 1.0])
    assert asm.add_if_scores(a0.rollout_id, [2, 2, 2])
    ready = asm.pop_ready()
    assert [(g.step, g.chain_id) for g in ready] == [(0, "a")]
    (a,) = ready
    assert [t.rollout for t in a.trajectories] == [a0, a1]
    assert a.trajectories[1].if_scores.values == (5.0, 4.0, 3.0)
    assert a.trajectories[1].cc_scores.values == (0.5, 0.6, 0.7)
    assert a.trajectories[0].if_scores.fallback == (False, False, False)
    assert asm.num_pending == 1
    assert asm.add_rollout(b1)
    assert asm.add_cc_scores(b1.rollout_id, [0.1, 0.2, 0.3])
    assert asm.add_cc_scores(b0.rollout_id, [0.4, 0.5, 0.6])
    assert asm.add_if_scores(b1.rollout_id, [4, 4, 4])
    (b,) = asm.pop_ready()
    assert b.chain_id == "b" and b.trajectories[0].if_scores.fallback == (False, True, False)
    assert asm.num_pending == 0 and asm.counters.completed_groups == 2


def test_duplicate_deliveries_are_ignored_and_counted_first_wins():
    asm = GroupAssembler(G, T)
    asm.expect(0, ["a"])
    r = rollout("a", 0)
    assert asm.add_rollout(r)
    retry = Rollout(r.rollout_id, "a", 0, 0, 8, ("other",) * T)  # the retried task's own result
    assert not asm.add_rollout(retry)
    assert asm.add_if_scores(r.rollout_id, [5, 5, 5])
    assert not asm.add_if_scores(r.rollout_id, [1, 1, 1])
    assert not asm.add_if_scores(r.rollout_id, [5, 5, 5])
    assert asm.add_cc_scores(r.rollout_id, [0.9, 0.9, 0.9])
    assert not asm.add_cc_scores(r.rollout_id, [0.1, 0.1, 0.1])
    finish(asm, "a", 1)
    (g,) = asm.pop_ready()
    t0 = g.trajectories[0]
    assert t0.rollout == r and t0.if_scores.values == (5.0, 5.0, 5.0) and t0.cc_scores.values == (0.9, 0.9, 0.9)
    c = asm.counters
    assert (c.duplicate_rollouts, c.duplicate_if_scores, c.duplicate_cc_scores) == (1, 2, 1)


def test_unknown_ids_and_malformed_deliveries_raise_clear_errors():
    asm = GroupAssembler(G, T)
    with pytest.raises(UnknownRolloutError, match="unknown rollout_id 'ghost'"):
        asm.add_if_scores("ghost", [1, 2, 3])
    with pytest.raises(UnknownRolloutError, match="cc scores"):
        asm.add_cc_scores("ghost", [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no group .* is expected"):
        asm.add_rollout(rollout("a", 0))
    asm.expect(0, ["a"])
    with pytest.raises(ValueError, match="already expected"):
        asm.expect(0, ["a"])
    with pytest.raises(ValueError, match="repeat"):
        asm.expect(1, ["x", "x"])
    with pytest.raises(ValueError, match="slot 2 outside"):
        asm.add_rollout(rollout("a", 2))
    with pytest.raises(ValueError, match="2 payloads for 3 turns"):
        asm.add_rollout(Rollout("r", "a", 0, 0, 0, ("p", "q")))
    asm.add_rollout(rollout("a", 0))
    with pytest.raises(ValueError, match="already holds rollout 's0/a/0'"):
        asm.add_rollout(Rollout("other-id", "a", 0, 0, 0, ("p",) * T))
    with pytest.raises(ValueError, match="2 values"):
        asm.add_if_scores("s0/a/0", [1, 2])
    with pytest.raises(ValueError, match="2 fallback flags"):
        asm.add_cc_scores("s0/a/0", [0.1, 0.2, 0.3], fallback=[True, False])


def test_late_stragglers_ignored_within_window_then_unknown():
    asm = GroupAssembler(G, T, late_window_steps=1)
    asm.expect(0, ["a"])
    finish(asm, "a", 0)
    finish(asm, "a", 1)
    assert len(asm.pop_ready()) == 1
    assert not asm.add_rollout(rollout("a", 0))
    assert not asm.add_if_scores("s0/a/1", [1, 1, 1])
    asm.expect(1, ["a"])  # step 0 is still within the window of 1 step
    assert not asm.add_cc_scores("s0/a/1", [0.1, 0.1, 0.1])
    assert asm.counters.late_deliveries == 3
    asm.expect(2, ["a"])  # now step 0 is forgotten
    with pytest.raises(UnknownRolloutError):
        asm.add_if_scores("s0/a/1", [1, 1, 1])


def test_drop_incomplete_logs_reason_keeps_complete_groups_and_ignores_stragglers(caplog):
    asm = GroupAssembler(G, T)
    asm.expect(0, ["a", "b", "c"])
    asm.expect(1, ["a"])
    finish(asm, "a", 0)
    finish(asm, "a", 1)  # complete, not popped yet
    finish(asm, "b", 0)  # half
    with caplog.at_level(logging.WARNING, logger="edit_rl.buffer.assembler"):
        dropped = asm.drop_incomplete("judge timeout", step=0)
    assert [(d.step, d.chain_id, d.reason) for d in dropped] == [(0, "b", "judge timeout"), (0, "c", "judge timeout")]
    assert dropped[0].detail == "1/2 rollouts, 1 IF, 1 CC scored"
    assert "judge timeout" in caplog.text and "'b'" in caplog.text
    assert asm.counters.dropped_groups == 2
    assert [g.chain_id for g in asm.pop_ready()] == ["a"]
    assert not asm.add_rollout(rollout("b", 1))  # straggler of a dropped group
    assert not asm.add_if_scores("s0/b/0", [1, 1, 1])
    assert asm.counters.late_deliveries == 2
    assert asm.num_pending == 1  # step 1 untouched
    assert [d.chain_id for d in asm.drop_incomplete("shutdown")] == ["a"]


def test_state_round_trip_is_exact_and_json():
    asm = GroupAssembler(G, T, late_window_steps=3)
    asm.expect(0, ["a", "b"])
    finish(asm, "a", 0)
    finish(asm, "a", 1)
    asm.pop_ready()
    r = rollout("b", 0)
    asm.add_rollout(r)
    asm.add_rollout(r)  # counted duplicate
    asm.add_if_scores(r.rollout_id, [math.nan, 4.0, math.inf], fallback=[True, False, False])
    asm.add_rollout(rollout("b", 1))
    text = json.dumps(asm.state_dict(), allow_nan=False)  # strict JSON

    restored = GroupAssembler(G, T)
    restored.load_state_dict(json.loads(text))
    assert restored.state_dict() == asm.state_dict()
    assert restored.counters == asm.counters and restored.late_window_steps == 3
    for a in (asm, restored):
        assert not a.add_rollout(r)  # still a duplicate after resume
        assert not a.add_if_scores("s0/a/0", [1, 1, 1])  # still late after resume
        a.add_cc_scores(r.rollout_id, [0.5, 0.5, 0.5])
        a.add_if_scores("s0/b/1", [2, 2, 2])
        a.add_cc_scores("s0/b/1", [0.4, 0.4, 0.4])
    (g1,), (g2,) = asm.pop_ready(), restored.pop_ready()
    assert repr(g1) == repr(g2)  # (NaN != NaN, so the groups are compared as text)
    v = g2.trajectories[0].if_scores.values
    assert math.isnan(v[0]) and v[1:] == (4.0, math.inf)
    assert g2.trajectories[0].if_scores.fallback == (True, False, False)
    assert restored.counters == asm.counters
    assert restored.counters.duplicate_rollouts == 2 and restored.counters.late_deliveries == 1


def test_load_rejects_a_state_of_another_shape():
    asm = GroupAssembler(G, T)
    with pytest.raises(ValueError, match="state is for G=3, T=3"):
        asm.load_state_dict(GroupAssembler(3, T).state_dict())
