"""Role memory, placement and step balance on the real presets, against hand-computed numbers."""
import math
from pathlib import Path

import pytest

from edit_rl.config.loader import load_config
from edit_rl.planning.architectures import largest_block_parameters, parameter_count
from edit_rl.planning.cards import card, usable_bytes
from edit_rl.planning.placement_fit import nodes_needed, placement_checks
from edit_rl.planning.role_memory import learner_rank_memory, rollout_worker_memory
from edit_rl.planning.step_balance import sample_bytes, step_balance, trained_levels

CONFIGS = Path(__file__).resolve().parents[3] / "jobs" / "configs"


def nft(*overrides):
    return load_config(CONFIGS / "flux_kontext_nft_b200.yaml", list(overrides))


def test_usable_memory_states_the_margin():
    assert usable_bytes(card("h100")) == int(0.9 * 80e9 - 2 ** 30)
    assert usable_bytes(card("b200"), 0.5) == int(0.5 * (0.9 * 180e9 - 2 ** 30))


def test_learner_weights_shard_under_fsdp2_and_replicate_under_zero2_or_the_replicate_strategy():
    full = parameter_count("flux_kontext_transformer") * 2
    sharded = learner_rank_memory(nft("learner.strategy=shard"), card("b200"))
    assert sharded.weights == math.ceil(full / 8) + 2 * largest_block_parameters("flux_kontext_transformer") * 2
    replica = learner_rank_memory(nft("learner.strategy=shard", "learner.backend=deepspeed", "learner.zero_stage=2"),
                                  card("b200"))
    assert replica.weights == full
    assert replica.load_peak == sharded.load_peak == full
    preset = learner_rank_memory(nft(), card("b200"))  # the preset's learner.strategy: replicate
    assert preset.weights == full and "replicate strategy" in preset.placement


def test_rollout_worker_holds_the_whole_editor():
    memory = rollout_worker_memory(nft(), card("b200"))
    parts = ("flux_kontext_transformer", "t5_xxl", "clip_l_text", "flux_vae")
    assert memory.weights == 2 * sum(parameter_count(p) for p in parts)
    more_rows = rollout_worker_memory(nft("rollout.chains_per_request=2"), card("b200"))
    assert more_rows.activations > memory.activations


def test_placement_of_the_nft_preset():
    cfg = nft()
    assert all(c.ok for c in placement_checks(cfg))
    # learner node (8); 4 rollout workers, 2 judges and a CC half GPU share a second
    assert nodes_needed(cfg, "min") == 2
    assert nodes_needed(cfg, "max") == 3  # 8 judges and 4 CC halves: 22 GPUs
    assert nodes_needed(nft("rollout.num_workers=8"), "min") == 3


def test_turn_sample_bytes_of_flux_kontext():
    """x0 fp32 (1024 x 64) + T5 embeddings (512 x 4096) and reference latents (1024 x 64) and pooled (768) in bf16."""
    assert sample_bytes(nft()) == 1024 * 64 * 4 + (512 * 4096 + 1024 * 64 + 768) * 2
    grpo = load_config(CONFIGS / "flux_kontext_grpo_b200.yaml")
    assert sample_bytes(grpo) == sample_bytes(nft()) + 6 * (2 * 1024 * 64 * 4 + 4)


def test_step_balance_of_the_nft_preset():
    cfg = nft()
    assert trained_levels(cfg) == 5  # int(0.99 x 6)
    balance = step_balance(cfg, card("b200"), 0.4)
    times = {t.role: t.seconds for t in balance.times}
    assert balance.mode == "async"
    assert balance.step_seconds == pytest.approx(max(times["rollout worker"] + max(times["judge replica"],
                                                     times["CC replica"]), times["learner rank"]))
    assert times["learner rank"] > 2 * times["rollout worker"]  # the learner bounds this preset
    assert balance.idle_share("learner rank") == 0.0
    assert balance.sample_bytes == 24 * 12 * 3 * sample_bytes(cfg)
    assert balance.weight_sync_bytes == 4 * 4 * 52_297_728  # rank-32 LoRA, fp32, to 4 workers
