"""Which hub repositories each preset fetches before a job (the download itself needs the hub and
a token, which this machine lacks; it is not tested here)."""
import pytest

from edit_rl.config import load_config
from edit_rl.models.predownload import repos_to_fetch
from jobs import predownload

FLUX_ROLES = ["black-forest-labs/FLUX.1-Kontext-dev", "Qwen/Qwen3-VL-8B-Instruct",
              "IDEA-Research/grounding-dino-tiny", "facebook/dinov3-vitb16-pretrain-lvd1689m"]


@pytest.mark.parametrize("preset, expected", [
    ("jobs/configs/flux_kontext_nft_b200.yaml", FLUX_ROLES),
    ("jobs/configs/flux_kontext_grpo_b200.yaml", FLUX_ROLES),
    ("jobs/configs/flux2_klein_nft_a100.yaml", ["black-forest-labs/FLUX.2-klein-base-9B", *FLUX_ROLES[1:]]),
    ("jobs/configs/cpu_tiny.yaml", []),  # tiny/ models are built locally
    ("experiments/shapes/configs/shapes_nft.yaml", []),  # shipped editor, synthetic judge and detector
])
def test_each_preset_fetches_its_hub_models_once(preset, expected):
    assert repos_to_fetch(load_config(preset)) == expected


def test_local_folders_and_the_synthetic_scorers_are_skipped(tmp_path):
    cfg = load_config("jobs/configs/flux_kontext_nft_b200.yaml",
                      [f"editor.name_or_path={tmp_path}", "judge.backend=synthetic", "judge.scoring=sampled"])
    assert repos_to_fetch(cfg) == FLUX_ROLES[2:]
    cfg.consistency.detector = "synthetic"
    assert repos_to_fetch(cfg) == []


def test_the_entrypoint_lists_without_downloading_on_dry_run(capsys):
    assert predownload.main(["--config", "jobs/configs/flux_kontext_nft_b200.yaml", "--dry-run"]) == FLUX_ROLES
    assert "repositories: black-forest-labs/FLUX.1-Kontext-dev, Qwen/Qwen3-VL-8B-Instruct" in capsys.readouterr().out
