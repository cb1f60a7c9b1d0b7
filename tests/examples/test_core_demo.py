"""The main-job demonstration runs end to end and the toy editor actually improves."""
import json

import pytest
import yaml

from examples import core_demo


@pytest.mark.slow
def test_core_demo_improves_multi_turn_success_and_writes_the_run(tmp_path, capsys):
    out = core_demo.main(["--output-dir", str(tmp_path), "--grpo-steps", "2"])
    assert out["agreement"]["euler"] <= 1e-5 and out["agreement"]["dpm2"] <= 1e-5
    before, after = out["before"], out["after"]
    # Exposure bias in the base: marginal success falls turn by turn.
    assert before["marginal"][0] > before["marginal"][2] + 10
    # MT-EditFlow-NFT lifts turn-3 cumulative success a lot without trading away consistency.
    assert after["cumulative"][2] >= before["cumulative"][2] + 20
    assert after["cc"][2] >= before["cc"][2] - 3
    run_dir = tmp_path / out["run_dir"].split("/")[-1]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trainer"]["num_steps"] == 80 and saved["reward"]["fusion"] == "advantage"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["objective"] for r in rows].count("nft") == 80
    assert [r["objective"] for r in rows].count("grpo") == 2
    assert {"kept_fraction", "zero_std_ratio", "fusion/if_cc_var_ratio", "reward_if_turn"} <= set(rows[0])
    assert "held-out chains" in capsys.readouterr().out


def test_core_demo_rejects_a_bad_override(tmp_path):
    import pytest

    from edit_rl.config import ConfigError
    with pytest.raises(ConfigError, match="reward.cc_weightt"):
        core_demo.main(["--output-dir", str(tmp_path), "reward.cc_weightt=0.5"])
