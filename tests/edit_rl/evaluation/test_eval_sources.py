"""The evaluation's chain sources (edit_rl/evaluation/sources.py) and its config section."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from edit_rl.config import ConfigError, load_config
from edit_rl.config.schema import DataConfig, EvaluationConfig
from edit_rl.data import ChainTurn, EditChain, encode_png, write_chains
from edit_rl.evaluation import load_eval_chains
from edit_rl.synthetic.splits import chain_key, make_split
from edit_rl.synthetic.world import Geometry


def test_synthetic_chains_are_held_out_from_the_training_chains():
    data = DataConfig(synthetic_train_chains=12, synthetic_image_size=32)
    loaded = load_eval_chains(EvaluationConfig(source="synthetic", synthetic_chains=6), data)
    train = make_split("train", 12, Geometry(32))
    assert len(loaded.chains) == 6 and loaded.errors == ()
    assert not {chain_key(c) for c in loaded.chains} & {chain_key(c) for c in train}
    assert "disjoint from the 12 training chains" in loaded.description
    cut = load_eval_chains(EvaluationConfig(source="synthetic", synthetic_chains=6, max_chains=2), data)
    assert cut.chains == loaded.chains[:2]


def test_parquet_chains_with_a_bad_row_reported(tmp_path):
    png = encode_png(Image.new("RGB", (8, 8), (9, 9, 9)))
    turn = ChainTurn("Remove the cat", "subject_remove", (), ("cat",), True)
    path = write_chains([EditChain("c1", (turn,), None, png, "mine"), EditChain("c2", (turn,), None, png, "mine")],
                        tmp_path / "chains.parquet")
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[1]["turns"] = []
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    loaded = load_eval_chains(EvaluationConfig(source="parquet", path=str(path)), DataConfig())
    assert [c.chain_id for c in loaded.chains] == ["c1"]
    assert [(e.row, e.reason) for e in loaded.errors] == [(1, "no turns")]


def test_evaluation_config_names_what_is_missing():
    with pytest.raises(ConfigError, match="evaluation.image_dir"):
        load_config(None, ["evaluation.source=edival", "evaluation.path=x.csv"])
    with pytest.raises(ConfigError, match="evaluation.path"):
        load_config(None, ["evaluation.source=parquet"])
    with pytest.raises(ConfigError, match="evaluation.modes"):
        load_config(None, ["evaluation.modes=[multi_turn, multi_turn]"])
    with pytest.raises(ConfigError, match="evaluation.modes\\[0\\]"):
        load_config(None, ["evaluation.modes=[pairwise]"])
    for preset in ("eval_synthetic", "eval_cpu_tiny", "eval_edival_flux_kontext"):
        cfg = load_config(f"jobs/configs/{preset}.yaml")
        assert cfg.evaluation.modes == ["multi_turn", "single_turn"]
    assert load_config("jobs/configs/eval_synthetic.yaml").reward.binary_threshold == 5.0  # rubric: 5 passes
