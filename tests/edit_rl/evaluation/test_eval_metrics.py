"""The benchmark's numbers reproduce MT-EditFlow's Tables 1 and 7 from per-turn success inputs
(edit_rl/evaluation/metrics.py), and EdiVal-CC aggregates like edit_rl.consistency.benchmark_cc."""
import math
import random

import pytest
import torch

from edit_rl.evaluation import (
    CCTerms,
    cumulative_success,
    edival_cc,
    edival_if,
    edival_overall,
    marginal_success,
    rounded_delta,
    success_drop,
    turn_succeeded,
)

NUM_CHAINS = 572  # EdiVal-Bench: 572 images x 3 turns

# MT-EditFlow Table 1 (EdiVal-IF T1-T3, EdiVal-CC T1-T3, EdiVal-O T1-T3), every row.
TABLE_1 = {
    "Seedream 4.0": (75.93, 55.58, 41.59, 92.51, 88.03, 85.86, 83.81, 69.95, 59.76),
    "GPT-Image-1.5": (75.19, 55.92, 40.08, 94.49, 91.20, 88.49, 84.29, 71.41, 59.55),
    "Nano Banana 2": (73.89, 54.17, 38.61, 93.54, 90.52, 88.61, 83.14, 70.02, 58.49),
    "FLUX.2-max": (75.55, 55.27, 39.36, 92.91, 88.30, 85.78, 83.78, 69.86, 58.10),
    "Nano Banana": (70.70, 50.66, 35.35, 93.91, 90.48, 89.48, 81.48, 67.70, 56.24),
    "GPT-Image-1": (73.12, 54.89, 38.35, 81.00, 77.78, 75.50, 76.96, 65.34, 53.81),
    "FLUX.1-Kontext-max": (69.49, 46.89, 31.83, 93.93, 90.90, 88.40, 80.79, 65.29, 53.04),
    "Gemini 2.0 Flash": (68.07, 45.96, 28.42, 90.58, 85.10, 80.88, 78.52, 62.54, 47.94),
    "IP2P": (37.41, 10.66, 2.80, 76.85, 68.36, 60.30, 53.62, 26.99, 12.99),
    "MagicBrush": (42.31, 15.73, 4.90, 86.96, 81.26, 76.86, 60.66, 35.75, 19.41),
    "AnyEdit": (41.07, 16.32, 7.22, 86.42, 78.91, 70.10, 59.58, 35.89, 22.50),
    "UltraEdit": (51.37, 17.70, 6.36, 86.80, 84.50, 82.40, 66.78, 38.67, 22.89),
    "OmniGen": (54.72, 24.48, 10.66, 93.00, 88.42, 83.92, 71.34, 46.52, 29.91),
    "Step1X-Edit": (61.89, 34.97, 17.83, 92.76, 88.52, 85.21, 75.77, 55.64, 38.98),
    "Qwen-Image-Edit": (72.90, 44.06, 22.55, 84.22, 80.52, 77.98, 78.36, 59.56, 41.93),
    "FLUX.1-Kontext-dev": (59.97, 32.69, 16.61, 95.32, 92.24, 90.22, 75.61, 54.91, 38.71),
    "+ MT-EditFlow-NFT (FLUX.1)": (62.24, 38.99, 22.90, 95.75, 92.47, 90.62, 77.20, 60.04, 45.56),
    "FLUX.2-Klein-base-9B": (67.83, 45.63, 28.67, 94.57, 90.52, 87.25, 80.09, 64.27, 50.01),
    "+ MT-EditFlow-NFT (FLUX.2)": (70.28, 48.08, 31.47, 95.18, 91.53, 88.95, 81.79, 66.34, 52.91),
}


def success_matrix(cumulative: tuple[int, int, int], marginal: tuple[int, int, int], n: int = NUM_CHAINS,
                   seed: int = 0) -> list[list[bool]]:
    """n chains x 3 turns with exactly ``cumulative[t]`` chains successful on turns 1..t+1 and
    ``marginal[t]`` chains successful on turn t+1 (turn order shuffled in, as a real run's)."""
    c1, c2, c3 = cumulative
    m1, m2, m3 = marginal
    assert c1 == m1
    rows = [[i < c1, i < c2, i < c3] for i in range(n)]
    # turn 2 successes without turn 1, turn 3 successes without turns 1 and 2
    for i in range(c1, c1 + m2 - c2):
        rows[i][1] = True
    others = [i for i in range(n) if not (rows[i][0] and rows[i][1])]
    for i in others[:m3 - c3]:
        rows[i][2] = True
    random.Random(seed).shuffle(rows)
    return rows


# (EdiVal-IF chain counts, marginal success chain counts, CC per turn) of 572 chains:
# MT-EditFlow Table 1 (IF, CC) and Table 7 (marginal success), FLUX.1-Kontext-dev and + MT-EditFlow-NFT.
KONTEXT_DEV = ((343, 187, 95), (343, 322, 294), (95.32, 92.24, 90.22))
KONTEXT_NFT = ((356, 223, 131), (356, 354, 350), (95.75, 92.47, 90.62))


def test_edival_if_and_marginal_success_reproduce_tables_1_and_7():
    dev = success_matrix(*KONTEXT_DEV[:2])
    nft = success_matrix(*KONTEXT_NFT[:2])
    # Table 1, EdiVal-IF
    assert [round(v, 2) for v in edival_if(dev)] == [59.97, 32.69, 16.61]
    assert [round(v, 2) for v in edival_if(nft)] == [62.24, 38.99, 22.90]
    # Table 7, marginal success and its drop T1 -> T3
    assert [round(v, 2) for v in marginal_success(dev)] == [59.97, 56.29, 51.40]
    assert round(success_drop(marginal_success(dev)), 2) == 8.57
    assert [round(v, 2) for v in marginal_success(nft)] == [62.24, 61.89, 61.19]
    assert round(success_drop(marginal_success(nft)), 2) == 1.05
    # Table 1's delta row (+ MT-EditFlow-NFT vs FLUX.1-Kontext-dev), from the printed numbers
    deltas = [rounded_delta(a, b) for a, b in zip(edival_if(dev), edival_if(nft))]
    assert deltas == [2.27, 6.30, 6.29]


def test_overall_is_sqrt_if_times_cc_for_every_row_of_table_1():
    assert round(edival_overall(16.61, 90.22), 2) == 38.71
    for model, row in TABLE_1.items():
        for t in range(3):
            assert abs(round(edival_overall(row[t], row[3 + t]), 2) - row[6 + t]) <= 0.011, (model, t)
    # exact where the paper's IF is the 572-chain count: O from the unrounded IF
    dev = success_matrix(*KONTEXT_DEV[:2])
    overall = [edival_overall(i, c) for i, c in zip(edival_if(dev), KONTEXT_DEV[2])]
    assert [round(o, 2) for o in overall[1:]] == [54.91, 38.71]
    assert edival_overall(50.0, None) is None
    assert edival_overall(50.0, -3.0) == 0.0  # a negative CC (random features) counts as 0


def test_edival_cc_from_per_pair_terms_reproduces_table_1_cc():
    for target in KONTEXT_DEV[2]:
        pairs = [CCTerms(target / 100 + d, target / 100 - d, True) for d in (0.01, -0.02, 0.01)]
        pairs.append(CCTerms(0.1, 0.1, False))  # after a background change: not counted
        assert round(edival_cc(pairs), 2) == target
    assert edival_cc([CCTerms(None, None, True)]) is None
    assert edival_cc([CCTerms(0.9, None, True), CCTerms(None, 0.7, True)]) == pytest.approx(80.0)
    assert edival_cc([CCTerms(0.9, 0.8, False)]) is None


def test_edival_cc_is_the_consistency_package_benchmark_aggregation():
    from edit_rl.consistency import PairConsistency, benchmark_cc

    rng = random.Random(3)
    empty = torch.zeros(0, 4)
    for _ in range(20):
        pairs = []
        for _ in range(rng.randint(1, 8)):
            obj = rng.choice([None, rng.uniform(-0.2, 1.0)])
            bg = rng.choice([None, rng.uniform(-0.2, 1.0)])
            pairs.append(PairConsistency(obj, (), bg, None, empty, empty, rng.random() < 0.7))
        ours = edival_cc([CCTerms(p.object_score, p.background_score, p.check_background) for p in pairs])
        theirs = benchmark_cc(pairs).cc
        assert (ours is None and theirs is None) or ours == pytest.approx(100 * theirs)


def test_cumulative_success_and_chains_of_different_lengths():
    assert cumulative_success([True, False, True]) == [True, False, False]
    chains = [[True, True, True], [True, False], [False]]
    assert edival_if(chains) == pytest.approx([200 / 3, 50.0, 100.0])  # turn t over chains with a turn t
    assert marginal_success(chains) == pytest.approx([200 / 3, 50.0, 100.0])
    assert marginal_success([[True, True], [False, True]]) == [50.0, 100.0]
    assert edival_if([[True, True], [False, True]]) == [50.0, 50.0]
    with pytest.raises(ValueError):
        success_drop([])


def test_success_is_a_score_at_or_above_the_threshold():
    assert turn_succeeded(4.0, 4.0) and turn_succeeded(4.6, 4.0) and not turn_succeeded(3.99, 4.0)
    assert turn_succeeded(5.0, 5.0) and not turn_succeeded(4.0, 5.0)  # the synthetic rubric passes only 5
    assert math.isclose(rounded_delta(59.965, 62.2378), 2.27) and rounded_delta(None, 1.0) is None
