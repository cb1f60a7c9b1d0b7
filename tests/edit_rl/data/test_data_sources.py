"""Training chains are checked when they are loaded, before anything starts: the number of turns
against rollout.num_turns, and every image decoded (a chain that fails is skipped naming it, the
skips counted; nothing usable, or no chain of the configured length, is an error)."""
import logging

import pytest
from PIL import Image

from edit_rl.config.schema import DataConfig
from edit_rl.data import ChainTurn, EditChain, encode_png, load_training_chains, write_chains

PNG = encode_png(Image.new("RGB", (8, 8), (200, 30, 30)))


def chain(chain_id: str, turns: int = 3, png: bytes | None = PNG, path: str | None = None) -> EditChain:
    return EditChain(chain_id, tuple(ChainTurn(f"Edit {k}.", "color_alter", (), ("circle",), True)
                                     for k in range(turns)), path, png, "test")


def parquet(tmp_path, chains) -> DataConfig:
    return DataConfig(source="parquet", train_path=str(write_chains(chains, tmp_path / "train.parquet")),
                      image_dir=str(tmp_path))


def test_chains_of_another_length_and_unreadable_images_are_skipped_by_name_and_counted(tmp_path, monkeypatch,
                                                                                         caplog):
    Image.new("RGB", (8, 8)).save(tmp_path / "on-disk.png")
    corrupt = PNG[:40] + bytes(len(PNG) - 40)  # PNG signature and header, then zeros
    chains = [chain("good"), chain("two-turns", turns=2), chain("missing", png=None, path="nowhere.png"),
              chain("corrupt", png=corrupt), chain("file", png=None, path="on-disk.png")]
    with caplog.at_level(logging.WARNING, logger="edit_rl.data.sources"):
        kept = load_training_chains(parquet(tmp_path, chains), num_turns=3)
    assert [c.chain_id for c in kept] == ["good", "file"]
    text = caplog.text
    assert "skipped chain 'two-turns': 2 turns, rollout.num_turns=3" in text
    assert "chain 'missing': image" in text and "nowhere.png' not found" in text
    assert "chain 'corrupt': cannot decode its inline PNG" in text
    assert "3 of 5 chains skipped" in text
    assert len(load_training_chains(parquet(tmp_path, chains))) == 5  # unchecked without num_turns

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 16)  # 8 x 8 is then a decompression bomb
    with pytest.raises(ValueError, match=r"no usable training chain; all 5 skipped .*decompression bomb"):
        load_training_chains(parquet(tmp_path, chains), num_turns=3)


def test_a_num_turns_that_no_chain_has_is_refused_at_load():
    with pytest.raises(ValueError, match=r"rollout.num_turns=2, but no chain of the synthetic train split has 2 "
                                         r"turns \(8 with 3 turns\)"):
        load_training_chains(DataConfig(synthetic_train_chains=8), num_turns=2)
    assert len(load_training_chains(DataConfig(synthetic_train_chains=8), num_turns=3)) == 8


def test_an_inline_png_that_does_not_decode_names_its_chain():
    with pytest.raises(OSError, match="chain 'corrupt': cannot decode its inline PNG"):
        chain("corrupt", png=PNG[:40] + bytes(len(PNG) - 40)).load_image()
