"""The typed config: YAML presets, dotted overrides, validation errors that name the key, save/load."""
from pathlib import Path

import pytest
import yaml

from edit_rl.config import Config, ConfigError, load_config, parse_override, save_config

ROOT = Path(__file__).parents[3]
PRESET_DIRS = ("jobs/configs", "experiments/shapes/configs", "examples/configs")
PRESETS = sorted(p for d in PRESET_DIRS for p in (ROOT / d).glob("*.yaml"))


def test_defaults_are_the_papers():
    cfg = load_config()
    assert cfg.objective.name == "nft"
    assert cfg.objective.nft.beta == 1.0 and cfg.objective.nft.adv_clip_max == 5.0
    assert cfg.objective.nft.kl_weight == 1e-4 and cfg.objective.nft.decay_type == 1
    assert cfg.sampler.method == "dpm2" and cfg.sampler.num_steps == 6
    assert cfg.editor.guidance_scale == 2.5 and cfg.editor.resolution == 512
    assert (cfg.rollout.group_size, cfg.rollout.groups_per_step, cfg.rollout.num_turns) == (12, 24, 3)
    assert (cfg.lora.rank, cfg.lora.alpha) == (32, 64)
    assert cfg.learner.lr == 3e-4 and cfg.learner.betas == [0.9, 0.999] and cfg.learner.grad_clip == 1.0
    assert (cfg.filter.tau_mu, cfg.filter.tau_sigma) == (0.9, 0.05)
    assert cfg.reward.if_strategy == "fine_avg" and cfg.reward.fusion == "advantage"
    assert cfg.reward.advantage_mode == "broadcast" and cfg.reward.std_mode == "global"
    assert cfg.objective.grpo.clip_range == 1e-4


def test_yaml_then_overrides_take_precedence(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"learner": {"lr": 1e-3, "num_ranks": 2}, "trainer": {"mode": "async"}}))
    cfg = load_config(preset, ["learner.lr=1e-4", "sampler.sde_window=[1, 3]", "data.train_path=x.parquet"])
    assert cfg.learner.lr == pytest.approx(1e-4)
    assert cfg.learner.num_ranks == 2 and cfg.trainer.mode == "async"
    assert cfg.sampler.sde_window == [1, 3]
    assert cfg.data.train_path == "x.parquet"


def test_int_given_for_float_is_accepted_and_converted():
    cfg = load_config(None, ["learner.lr=1"])
    assert isinstance(cfg.learner.lr, float) and cfg.learner.lr == 1.0


@pytest.mark.parametrize("override, fragment", [
    ("learner.lrr=1e-4", "unknown key 'learner.lrr' (did you mean 'learner.lr'?)"),
    ("lerner.lr=1e-4", "unknown key 'lerner'"),
    ("learner.lr=fast", "learner.lr: expected a number"),
    ("learner.lr=-1", "learner.lr: must be > 0"),
    ("rollout.group_size=1", "rollout.group_size: must be >= 2"),
    ("rollout.group_size=2.5", "rollout.group_size: expected an integer"),
    ("objective.name=ppo", "objective.name: 'ppo' is not one of ['nft', 'grpo']"),
    ("objective.nft.decay_type=3", "objective.nft.decay_type: 3 is not one of [0, 1, 2]"),
    ("filter.enabled=maybe", "filter.enabled: expected true or false"),
    ("sampler.sde_window=[4,2]", "sampler.sde_window: must be [start, end)"),
    ("learner=3", "learner: expected a mapping"),
    ("learner.lr.x=1", "learner.lr: expected a number, got {'x': 1}"),
    ("judge.scaling.min_replicas=5", "judge.scaling.min_replicas: must satisfy"),
    ("noequals", "must look like key.subkey=value"),
    ("learner.backend=deepspeed learner.zero_stage=1", "learner.zero_stage: 1 is not one of [2, 3]"),
    ("learner.zero3_persistence_threshold=-1", "learner.zero3_persistence_threshold: must be >= 0"),
    ("learner.ema_max_decay=1", "learner.ema_max_decay: must be in [0, 1)"),
])
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, override.split(" "))
    assert fragment in str(err.value)



def test_the_pixel_space_shapes_editor_needs_a_multiple_of_4_the_vae_editors_of_16():
    assert load_config(None, ["editor.family=shapes_kontext", "editor.resolution=36"]).editor.resolution == 36
    for overrides, fragment in ((["editor.family=shapes_kontext", "editor.resolution=34"], "multiple of 4"),
                                (["editor.family=flux_kontext", "editor.resolution=36"], "multiple of 16")):
        with pytest.raises(ConfigError, match=fragment):
            load_config(None, overrides)


def test_deepspeed_zero3_is_accepted():
    cfg = load_config(None, ["learner.backend=deepspeed", "learner.zero_stage=3",
                             "learner.zero3_persistence_threshold=0"])
    assert (cfg.learner.zero_stage, cfg.learner.zero3_persistence_threshold) == (3, 0)
    assert load_config().learner.zero3_persistence_threshold == 100_000  # DeepSpeed's default


def test_cross_section_rule_grpo_needs_sde():
    with pytest.raises(ConfigError, match="objective.name=grpo needs sampler.method=sde"):
        load_config(None, ["objective.name=grpo"])
    cfg = load_config(None, ["objective.name=grpo", "sampler.method=sde"])
    assert cfg.objective.name == "grpo"


def test_reward_scale_must_match_the_judge_scale():
    with pytest.raises(ConfigError, match=r"must match the judge's scale \(0.0, 5.0\)"):
        load_config(None, ["judge.score_scale=0-5"])
    cfg = load_config(None, ["judge.score_scale=0-5", "reward.score_min=0", "reward.binary_threshold=4"])
    assert (cfg.reward.score_min, cfg.reward.score_max) == (0.0, 5.0)


def test_missing_file_and_non_mapping_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_override_below_an_overridden_value_is_refused():
    with pytest.raises(ConfigError, match="learner.lr is a value, not a section"):
        load_config(None, ["learner.lr=1e-3", "learner.lr.x=1"])


def test_parse_override_uses_yaml_scalars():
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override("a.b=true") == ("a.b", True)
    assert parse_override("a.b=[1,2]") == ("a.b", [1, 2])
    assert parse_override("a.b=x=y") == ("a.b", "x=y")


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(None, ["learner.lr=2e-4", "reward.cc_weight=0.5", "sampler.sde_window=[0, 2]"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert isinstance(again, Config)


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_shipped_preset_loads_and_round_trips(preset, tmp_path):
    cfg = load_config(preset)
    assert load_config(save_config(cfg, tmp_path / "c.yaml")) == cfg


def test_presets_exist():
    shipped = {p.relative_to(ROOT).as_posix() for p in PRESETS}
    assert {"jobs/configs/cpu_tiny.yaml", "experiments/shapes/configs/shapes_nft.yaml",
            "examples/configs/core_demo.yaml"} <= shipped


def test_the_replicated_base_is_the_flux_presets_learner_and_needs_fsdp2():
    for preset in ("flux_kontext_nft_b200", "flux_kontext_grpo_b200"):
        assert load_config(f"jobs/configs/{preset}.yaml").learner.strategy == "replicate"
    with pytest.raises(ConfigError, match="learner.strategy: 'replicate' needs backend 'fsdp2'"):
        load_config("jobs/configs/flux2_klein_nft_a100.yaml", ["learner.strategy=replicate"])


def test_trainer_storage_must_be_a_uri_or_an_absolute_path():
    for ok in ("s3://bucket/prefix", "file:///shared/runs", "/mnt/shared/runs"):
        assert load_config("jobs/configs/cpu_tiny.yaml", [f"trainer.storage={ok}"]).trainer.storage == ok
    with pytest.raises(ConfigError, match="trainer.storage: must be a URI"):
        load_config("jobs/configs/cpu_tiny.yaml", ["trainer.storage=shared/runs"])


@pytest.mark.parametrize("value", ["inf", "-inf", ".inf", "nan", ".nan", "1e999"])
def test_a_float_that_is_not_finite_is_refused_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"^learner\.lr: expected a finite number, got "):
        load_config(overrides=[f"learner.lr={value}"])


def test_a_yaml_syntax_error_is_a_config_error_line_naming_the_file_and_place(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("learner:\n  lr: [1e-4\nrollout: {num_turns: 3}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}: not valid YAML: ") and "line 3" in message and "\n" not in message
    from jobs import train

    with pytest.raises(SystemExit, match=r"^config error: .*broken\.yaml: not valid YAML"):
        train.main(["--config", str(bad)])
