"""The placement keys of ``cluster`` (ClusterConfig): defaults, presets, and the combinations
refused with an error naming the key."""
import pytest

from edit_rl.config import ConfigError, load_config
from edit_rl.config.schema import ClusterConfig, Config


def test_defaults_keep_separate_groups_and_the_learners_strategy():
    cc = load_config().cluster
    assert (cc.placement_strategy, cc.rollout_strategy, cc.service_strategy) == ("PACK", "PACK", "PACK")
    assert cc.colocate_rollout_and_learner is False and cc.placement_timeout_s == 600.0


def test_presets_place_the_cpu_default_on_one_node_and_gpu_learners_on_one_node_each():
    tiny = load_config("jobs/configs/cpu_tiny.yaml").cluster
    assert tiny.colocate_rollout_and_learner and tiny.placement_strategy == tiny.rollout_strategy == "STRICT_PACK"
    for name in ("flux_kontext_nft_b200", "flux_kontext_grpo_b200", "flux2_klein_nft_a100"):
        cc = load_config(f"jobs/configs/{name}.yaml").cluster
        assert (cc.placement_strategy, cc.rollout_strategy, cc.colocate_rollout_and_learner) == \
            ("STRICT_PACK", "PACK", False), name
        assert cc.placement_timeout_s >= 600, name


def test_colocation_with_one_strategy_loads():
    cfg = load_config(None, ["cluster.colocate_rollout_and_learner=true", "cluster.placement_strategy=SPREAD",
                             "cluster.rollout_strategy=SPREAD"])
    assert cfg.cluster.colocate_rollout_and_learner and cfg.cluster.rollout_strategy == "SPREAD"


@pytest.mark.parametrize("overrides, fragment", [
    ("cluster.rollout_strategy=NEAR",
     "cluster.rollout_strategy: 'NEAR' is not one of ['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD']"),
    ("cluster.service_strategy=pack", "cluster.service_strategy: 'pack' is not one of"),
    ("cluster.colocate_rollout_and_learner=maybe", "cluster.colocate_rollout_and_learner: expected true or false"),
    ("cluster.colocate_rollout_and_learner=true cluster.placement_strategy=STRICT_PACK",
     "cluster.rollout_strategy: 'PACK' cannot apply with colocate_rollout_and_learner=true: the rollout workers "
     "then share the learner ranks' placement group, placed with cluster.placement_strategy='STRICT_PACK'"),
    ("cluster.placement_timeout_s=0", "cluster.placement_timeout_s: must be > 0 seconds"),
    ("cluster.cpu_threads=-1", "cluster.cpu_threads: must be >= 0"),
    ("cluster.rollout_num_cpus=0 cluster.rollout_num_gpus=0",
     "cluster.rollout_num_cpus: rollout_num_cpus and rollout_num_gpus are both 0"),
    ("learner.num_cpus_per_rank=0 learner.num_gpus_per_rank=0",
     "learner.num_cpus_per_rank: num_cpus_per_rank and num_gpus_per_rank are both 0"),
    ("consistency.scaling.num_cpus=0 consistency.scaling.num_gpus=0",
     "consistency.scaling.num_cpus: num_cpus and num_gpus are both 0: each consistency replica reserves"),
])
def test_bad_placement_names_the_key(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides.split(" "))
    assert fragment in str(err.value)


def test_validation_of_configs_built_in_code():
    with pytest.raises(ConfigError, match=r"cluster.placement_strategy: unknown placement-group strategy 'NEAR'"):
        ClusterConfig(placement_strategy="NEAR").validate()  # type: ignore[arg-type]
    cfg = Config()
    cfg.judge.scaling.num_gpus = cfg.judge.scaling.num_cpus = 0
    cfg.judge.scaling.validate("judge.scaling")  # the section alone is fine...
    with pytest.raises(ConfigError, match="judge.scaling.num_cpus: num_cpus and num_gpus are both 0"):
        cfg.validate()  # ...but a replica's bundle would be empty: Config.validate checks across sections
