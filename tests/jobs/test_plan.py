"""python -m jobs.plan on every GPU preset: fits where it should, refuses impossible overrides naming the role."""
from pathlib import Path

import pytest
import yaml

from jobs.plan import main

CONFIGS = Path(__file__).resolve().parents[2] / "jobs" / "configs"
GPU_PRESETS = sorted(p.name for p in CONFIGS.glob("*.yaml")
                     if ((yaml.safe_load(p.read_text()) or {}).get("cluster") or {}).get("gpu_type"))
ROLES = ("rollout worker", "learner rank", "judge replica", "CC replica")


def test_the_gpu_presets_are_found():
    assert {"flux_kontext_nft_b200.yaml", "flux_kontext_grpo_b200.yaml", "flux2_klein_nft_a100.yaml"} <= set(
        GPU_PRESETS)


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_every_gpu_preset_fits_its_card(preset, capsys):
    assert main(["--config", str(CONFIGS / preset)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# python -m jobs.plan --config ")
    assert all(role in out for role in ROLES)
    assert "result: fits" in out


def test_replicated_editor_with_huge_batches_does_not_fit_an_a100(capsys):
    code = main(["--config", str(CONFIGS / "flux_kontext_nft_b200.yaml"), "--gpu", "a100-80",
                 "rollout.chains_per_request=16", "learner.strategy=shard", "learner.backend=deepspeed", "learner.zero_stage=2",
                 "learner.micro_batch_size=16", "editor.gradient_checkpointing=false"])
    out = capsys.readouterr().out
    assert code == 1
    assert "CANNOT RUN" in out
    problems = out.split("result: CANNOT RUN")[1]
    assert "  rollout worker: needs " in problems and "  learner rank: needs " in problems
    assert "on 1 x a100-80, 66.1 GiB usable" in problems
    assert "judge replica" not in problems


def test_more_learner_ranks_than_a_node_holds_is_refused(capsys):
    code = main(["--config", str(CONFIGS / "flux_kontext_nft_b200.yaml"), "learner.num_ranks=12"])
    out = capsys.readouterr().out
    assert code == 1
    assert "learner rank: STRICT_PACK puts all 12 bundles (12 GPUs) on one node of 8 GPUs" in out


def test_a_cpu_preset_needs_a_gpu_named(capsys):
    assert main(["--config", str(CONFIGS / "cpu_tiny.yaml")]) == 2
    assert "pass --gpu" in capsys.readouterr().err
