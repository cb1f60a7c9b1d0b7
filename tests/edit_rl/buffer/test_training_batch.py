"""build_training_batch: exact advantages and r for a hand-built batch (2 groups x 3 trajectories
x 3 turns) under both fusion levels and both advantage modes, the filter's drop log and bans,
NaN handling, statistics."""
import math
from statistics import fmean, pstdev

import pytest

from edit_rl.buffer import NAN_SCORE, Rollout, ScoredTrajectory, TrajectoryGroup, TurnScores, build_training_batch
from edit_rl.config.schema import FilterConfig, RewardConfig
from edit_rl.rewards import PromptBanList

EPS = 1e-4  # RewardConfig.adv_eps
LAM = 0.5  # cc_weight used here
C = 5.0  # NFT adv_clip_max


def make_group(chain: str, if_scores, cc_scores, versions=None, if_fb=None, cc_fb=None, step=3) -> TrajectoryGroup:
    trajs = []
    for g, (s_if, s_cc) in enumerate(zip(if_scores, cc_scores)):
        rid = f"{chain}/{g}"
        ro = Rollout(rid, chain, g, step, versions[g] if versions else 6, tuple(f"{rid}/turn{k}" for k in range(3)))
        trajs.append(ScoredTrajectory(
            ro,
            TurnScores(tuple(map(float, s_if)), tuple(if_fb[g]) if if_fb else (False,) * 3),
            TurnScores(tuple(map(float, s_cc)), tuple(cc_fb[g]) if cc_fb else (False,) * 3)))
    return TrajectoryGroup(step, chain, tuple(trajs))


# The hand-built batch. IF: Likert 1-5 per turn; CC in [-1, 1] per turn.
IF_A = [[5, 5, 5], [5, 3, 1], [1, 1, 1]]          # fine_avg R_IF = (s - 1) / 4 averaged: 1, 0.5, 0
IF_B = [[5, 5, 5], [3, 3, 3], [4, 4, 4]]          # R_IF: 1, 0.5, 0.75
CC_A = [[0.9, 0.9, 0.9], [0.7, 0.8, 0.9], [1.0, 1.0, 1.0]]  # R_CC: 0.9, 0.8, 1.0
CC_B = [[0.6, 0.6, 0.6], [0.8, 0.8, 0.8], [0.7, 0.7, 0.7]]  # R_CC: 0.6, 0.8, 0.7


def hand_groups():
    return [make_group("a", IF_A, CC_A, versions=[5, 5, 4]), make_group("b", IF_B, CC_B, versions=[3, 5, 5])]


def group_adv(rows: list[list[float]]) -> list[list[float]]:
    """A = (R - mean of own group) / (population std of ALL rewards of the batch + eps)."""
    std = pstdev([x for row in rows for x in row])
    return [[(x - fmean(row)) / (std + EPS) for x in row] for row in rows]


def r_of(a: float) -> float:
    return min(max(min(max(a, -C), C) / C / 2 + 0.5, 0.0), 1.0)


def cfg(fusion: str, mode: str, **kw) -> RewardConfig:
    return RewardConfig(fusion=fusion, advantage_mode=mode, cc_weight=LAM, **kw)


def sample_table(batch, attr: str) -> list[list[list[float]]]:
    """(group, slot, turn) table of a sample attribute (samples are ordered that way)."""
    vals = [getattr(s, attr) for s in batch.samples]
    return [[vals[(n * 3 + g) * 3:(n * 3 + g) * 3 + 3] for g in range(3)] for n in range(len(vals) // 9)]


def test_broadcast_advantage_level_exact_numbers():
    # R_IF = [[1, .5, 0], [1, .5, .75]]; batch mean .625; squared deviations
    # .140625 .015625 .390625 .140625 .015625 .015625 -> sum .71875 -> std_IF = sqrt(.71875 / 6) = .3461093
    # R_CC = [[.9, .8, 1], [.6, .8, .7]]; batch mean .8 -> sum of squares .1 -> std_CC = sqrt(.1 / 6) = .1290994
    # A = (R_IF - group mean) / (std_IF + eps) + .5 (R_CC - group mean) / (std_CC + eps)
    std_if, std_cc = math.sqrt(0.71875 / 6), math.sqrt(0.1 / 6)
    a_if = [[0.5, 0.0, -0.5], [0.25, -0.25, 0.0]]
    a_cc = [[0.0, -0.1, 0.1], [-0.1, 0.1, 0.0]]
    expected = [[a_if[n][g] / (std_if + EPS) + LAM * a_cc[n][g] / (std_cc + EPS) for g in range(3)] for n in range(2)]
    assert expected[0][0] == pytest.approx(1.444213, abs=1e-6)  # .5 / (.3461093 + 1e-4)
    batch = build_training_batch(hand_groups(), cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=6, policy_version=6)
    assert len(batch.samples) == 18 and batch.dropped == () and batch.num_steps_per_turn == 6
    adv = sample_table(batch, "advantage")
    for n in range(2):
        for g in range(3):
            assert adv[n][g] == pytest.approx([expected[n][g]] * 3, abs=1e-9)  # same on every turn
    r = sample_table(batch, "r")
    assert r[0][0][0] == pytest.approx(0.5 + 1.444213 / 10, abs=1e-6)
    assert r == [[pytest.approx([r_of(expected[n][g])] * 3, abs=1e-9) for g in range(3)] for n in range(2)]


def test_broadcast_reward_level_exact_numbers():
    # R = R_IF + .5 R_CC = [[1.45, .9, .5], [1.3, .9, 1.1]]; group means .95 and 1.1;
    # batch mean 1.025; squared deviations sum .56875 -> std = sqrt(.56875 / 6) = .3078826
    std = math.sqrt(0.56875 / 6)
    centred = [[0.5, -0.05, -0.45], [0.2, -0.2, 0.0]]
    expected = [[c / (std + EPS) for c in row] for row in centred]
    assert expected == [pytest.approx(row) for row in group_adv([[1.45, 0.9, 0.5], [1.3, 0.9, 1.1]])]
    batch = build_training_batch(hand_groups(), cfg("reward", "broadcast"), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=1, policy_version=6)
    adv, r = sample_table(batch, "advantage"), sample_table(batch, "r")
    for n in range(2):
        for g in range(3):
            assert adv[n][g] == pytest.approx([expected[n][g]] * 3, abs=1e-9)
            assert r[n][g] == pytest.approx([r_of(expected[n][g])] * 3, abs=1e-9)


# Per-turn rewards (ablation): turn k of every trajectory, IF normalised (s - 1) / 4.
IF_TURN = [[[1.0, 1.0, 0.0], [1.0, 0.5, 0.75]],   # turn 0: rows = groups a, b; columns = slots
           [[1.0, 0.5, 0.0], [1.0, 0.5, 0.75]],   # turn 1
           [[1.0, 0.0, 0.0], [1.0, 0.5, 0.75]]]   # turn 2
CC_TURN = [[[0.9, 0.7, 1.0], [0.6, 0.8, 0.7]],
           [[0.9, 0.8, 1.0], [0.6, 0.8, 0.7]],
           [[0.9, 0.9, 1.0], [0.6, 0.8, 0.7]]]


@pytest.mark.parametrize("fusion", ["advantage", "reward"])
def test_per_turn_ablation_exact_numbers(fusion):
    expected = [[[0.0] * 3 for _ in range(3)] for _ in range(2)]  # [group][slot][turn]
    for k in range(3):
        if fusion == "advantage":  # A_k = A(IF_k) + lambda A(CC_k), each with its own turn-k batch std
            a_if, a_cc = group_adv(IF_TURN[k]), group_adv(CC_TURN[k])
            a = [[a_if[n][g] + LAM * a_cc[n][g] for g in range(3)] for n in range(2)]
        else:  # A_k = A(IF_k + lambda CC_k)
            a = group_adv([[IF_TURN[k][n][g] + LAM * CC_TURN[k][n][g] for g in range(3)] for n in range(2)])
        for n in range(2):
            for g in range(3):
                expected[n][g][k] = a[n][g]
    if fusion == "advantage":
        # Spot check, turn 1, group a, slot 0: IF_1 = [[1, .5, 0], [1, .5, .75]] is R_IF of the
        # broadcast case (std .3461093); CC_1 = R_CC of the broadcast case (std .1290994).
        assert expected[0][0][1] == pytest.approx(0.5 / (math.sqrt(0.71875 / 6) + EPS), abs=1e-9)
    batch = build_training_batch(hand_groups(), cfg(fusion, "per_turn"), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=6, policy_version=6)
    adv, r = sample_table(batch, "advantage"), sample_table(batch, "r")
    for n in range(2):
        for g in range(3):
            assert adv[n][g] == pytest.approx(expected[n][g], abs=1e-9)
            assert r[n][g] == pytest.approx([r_of(a) for a in expected[n][g]], abs=1e-9)
    assert adv[0][1][0] != pytest.approx(adv[0][1][2])  # turns really differ


def test_samples_carry_handles_ids_and_stats():
    groups = hand_groups()
    groups[0] = make_group("a", IF_A, CC_A, versions=[5, 5, 4],
                           if_fb=[[False] * 3, [False, False, True], [False] * 3])
    groups[1] = make_group("b", IF_B, CC_B, versions=[3, 5, 5],
                           cc_fb=[[False] * 3, [False] * 3, [True, True, False]])
    batch = build_training_batch(groups, cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=6, policy_version=6)
    s = batch.samples[4]  # group a, slot 1, turn 1
    assert (s.rollout_id, s.chain_id, s.slot, s.turn, s.payload, s.policy_version, s.step, s.weight) == (
        "a/1", "a", 1, 1, "a/1/turn1", 5, 3, 1.0)
    assert [(x.rollout_id, x.turn) for x in batch.samples[:4]] == [("a/0", 0), ("a/0", 1), ("a/0", 2), ("a/1", 0)]
    st = batch.stats
    assert st.if_turn_mean == pytest.approx((23 / 6, 21 / 6, 19 / 6))  # raw Likert: (5+5+1+5+3+4)/6, ...
    assert st.cc_turn_mean == pytest.approx((4.7 / 6, 4.8 / 6, 4.9 / 6))
    assert st.r_if_mean == pytest.approx(3.75 / 6) and st.r_cc_mean == pytest.approx(0.8)
    assert (st.num_groups, st.num_kept_groups, st.num_samples, st.kept_fraction) == (2, 2, 18, 1.0)
    assert st.zero_std_ratio == 0.0
    assert st.mean_group_std == pytest.approx((pstdev([1, 0.5, 0]) + pstdev([1, 0.5, 0.75])) / 2)
    assert (st.if_fallback_turns, st.cc_fallback_turns) == (1, 2)
    assert st.staleness_max == 3 and st.staleness_mean == pytest.approx(9 / 6)  # 6 - [5, 5, 4, 3, 5, 5]
    assert st.fused["adv_mean"] == pytest.approx(0.0, abs=1e-12)
    assert st.fused["if_within_group_var"] == pytest.approx(fmean([pstdev([1, .5, 0]) ** 2, pstdev([1, .5, .75]) ** 2]))
    assert st.fused["cc_weight"] == LAM
    m = st.metrics()
    assert m["reward"]["if_turn"] == pytest.approx([23 / 6, 21 / 6, 19 / 6])
    assert m["fallback"] == {"if_turns": 1, "cc_turns": 2} and m["staleness"]["max"] == 3
    assert m["adv"] == st.fused and m["filter"]["kept_fraction"] == 1.0


def test_filter_drops_are_logged_with_mu_sigma_reason_and_ban():
    groups = [
        make_group("a", IF_A, CC_A),                                      # mu .5, sigma .408: kept
        make_group("easy", [[5] * 3] * 3, CC_B),                          # mu 1, sigma 0: dropped, banned
        make_group("hard", [[1] * 3] * 3, CC_B),                          # mu 0, sigma 0: dropped
        make_group("noisy_high", [[5] * 3, [5] * 3, [4] * 3], CC_B),      # mu .9167, sigma .1179: dropped
    ]
    ban = PromptBanList(["old"])
    batch = build_training_batch(groups, cfg("advantage", "broadcast"), FilterConfig(), ban,
                                 num_steps_per_turn=6, policy_version=6)
    assert {s.chain_id for s in batch.samples} == {"a"} and len(batch.samples) == 9
    log = {d.chain_id: d for d in batch.dropped}
    assert log["easy"].reason == "filter: std <= tau_sigma, mean >= tau_mu"
    assert (log["easy"].mu, log["easy"].sigma) == (1.0, 0.0)
    assert log["easy"].detail.endswith("; prompt banned")
    assert log["hard"].reason == "filter: std <= tau_sigma" and log["hard"].mu == 0.0
    assert "banned" not in log["hard"].detail
    assert log["noisy_high"].reason == "filter: mean >= tau_mu"
    assert log["noisy_high"].mu == pytest.approx(2.75 / 3)
    assert log["noisy_high"].sigma == pytest.approx(pstdev([1, 1, 0.75]))
    assert batch.banned_chain_ids == ("easy",) and "easy" in ban and len(ban) == 2
    st = batch.stats
    assert (st.num_filtered_groups, st.num_banned_new, st.num_banned_total) == (3, 1, 2)
    assert st.kept_fraction == 0.25 and st.zero_std_ratio == 0.5
    # Advantages use the whole scored batch (Edit-R1 reference): the filtered groups widen the global std.
    r_if = [[1, 0.5, 0], [1, 1, 1], [0, 0, 0], [1, 1, 0.75]]
    r_cc = [[0.9, 0.8, 1.0]] + [[0.6, 0.8, 0.7]] * 3
    a_if, a_cc = group_adv(r_if), group_adv(r_cc)
    adv = sample_table(batch, "advantage")[0]
    assert [row[0] for row in adv] == pytest.approx([a_if[0][g] + LAM * a_cc[0][g] for g in range(3)], abs=1e-9)
    off = build_training_batch(groups, cfg("advantage", "broadcast"), FilterConfig(enabled=False),
                               PromptBanList(), num_steps_per_turn=6, policy_version=6)
    assert len(off.samples) == 36 and off.dropped == () and off.banned_chain_ids == ()


def test_nan_scores_drop_the_group_and_are_never_used():
    bad_if = [row[:] for row in IF_A]
    bad_if[1][1] = math.nan
    bad_cc = [row[:] for row in CC_B]
    bad_cc[2][0] = math.nan
    groups = [make_group("a", bad_if, CC_A), make_group("b", IF_B, CC_B), make_group("c", IF_A, bad_cc)]
    batch = build_training_batch(groups, cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                                 num_steps_per_turn=6, policy_version=6)
    assert [(d.chain_id, d.reason) for d in batch.dropped] == [("a", NAN_SCORE), ("c", NAN_SCORE)]
    assert batch.dropped[0].detail == "non-finite scores: a/1 (IF)"
    assert batch.dropped[1].detail == "non-finite scores: c/2 (CC)"
    assert {s.chain_id for s in batch.samples} == {"b"}
    # Group b alone: A = A_IF + .5 A_CC with the stds of b's own rewards.
    a_if, a_cc = group_adv([[1, 0.5, 0.75]]), group_adv([[0.6, 0.8, 0.7]])
    adv = sample_table(batch, "advantage")[0]
    assert [row[2] for row in adv] == pytest.approx([a_if[0][g] + LAM * a_cc[0][g] for g in range(3)], abs=1e-9)
    assert all(math.isfinite(s.advantage) and math.isfinite(s.r) for s in batch.samples)
    st = batch.stats
    assert (st.num_nan_groups, st.num_scored_groups, st.kept_fraction) == (2, 1, pytest.approx(1 / 3))
    assert st.if_turn_mean == pytest.approx((4, 4, 4))  # b only: (5 + 3 + 4) / 3 on each turn

    only_nan = build_training_batch(groups[:1], cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                                    num_steps_per_turn=6, policy_version=6)
    assert only_nan.samples == () and only_nan.stats.num_nan_groups == 1 and only_nan.stats.fused == {}
    assert only_nan.stats.r_if_mean is None and only_nan.stats.kept_fraction == 0.0


def test_binary_strategy_thresholds_then_aggregates():
    # binary_avg at threshold 4: IF_A -> successes [1,1,1], [1,0,0], [0,0,0] -> R_IF 1, 1/3, 0
    batch = build_training_batch(hand_groups(), cfg("advantage", "broadcast", if_strategy="binary_avg"),
                                 FilterConfig(), PromptBanList(), num_steps_per_turn=6, policy_version=6)
    # IF_B -> [1,1,1], [0,0,0], [1,1,1] -> 1, 0, 1
    assert batch.stats.r_if_mean == pytest.approx((1 + 1 / 3 + 0 + 1 + 0 + 1) / 6)
    a_if, a_cc = group_adv([[1, 1 / 3, 0], [1, 0, 1]]), group_adv([[0.9, 0.8, 1.0], [0.6, 0.8, 0.7]])
    adv = sample_table(batch, "advantage")
    assert [adv[n][g][0] for n in range(2) for g in range(3)] == pytest.approx(
        [a_if[n][g] + LAM * a_cc[n][g] for n in range(2) for g in range(3)], abs=1e-9)


def test_rejects_future_policy_versions_and_ragged_groups():
    with pytest.raises(ValueError, match="newer than the current 4"):
        build_training_batch(hand_groups(), cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                             num_steps_per_turn=6, policy_version=4)
    short = make_group("s", IF_A[:2], CC_A[:2])
    with pytest.raises(ValueError, match="group sizes \\[2, 3\\]"):
        build_training_batch([hand_groups()[0], short], cfg("advantage", "broadcast"), FilterConfig(),
                             PromptBanList(), num_steps_per_turn=6, policy_version=6)
    with pytest.raises(ValueError, match="num_steps_per_turn"):
        build_training_batch(hand_groups(), cfg("advantage", "broadcast"), FilterConfig(), PromptBanList(),
                             num_steps_per_turn=0, policy_version=6)
