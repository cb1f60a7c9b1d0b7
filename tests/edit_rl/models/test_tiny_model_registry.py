"""resolve_model: hub ids pass through; tiny names build once (locked, atomic) into the cache."""

import threading
import time
from pathlib import Path

import pytest

from edit_rl.models import build_tiny, registry
from edit_rl.models.registry import TINY_MODELS, resolve_model, tiny_model_folder

BUILDS: list[Path] = []


def fake_build(folder: Path) -> None:
    """A slow builder that records each call, so concurrent resolutions can be counted."""
    BUILDS.append(folder)
    folder.mkdir()
    time.sleep(0.3)
    (folder / "weights.txt").write_text("tiny")


def failing_build(folder: Path) -> None:
    folder.mkdir()
    (folder / "partial.txt").write_text("half")
    raise RuntimeError("builder failed")


@pytest.fixture
def fake_models(monkeypatch, tmp_path):
    monkeypatch.setitem(TINY_MODELS, "tiny/fake", f"{__name__}:fake_build")
    monkeypatch.setitem(TINY_MODELS, "tiny/broken", f"{__name__}:failing_build")
    monkeypatch.setenv("EDIT_RL_TINY_MODELS", str(tmp_path / "cache"))
    BUILDS.clear()
    return tmp_path / "cache"


def test_hub_ids_and_paths_pass_through_unchanged():
    assert resolve_model("black-forest-labs/FLUX.1-Kontext-dev") == "black-forest-labs/FLUX.1-Kontext-dev"
    assert resolve_model("/models/flux") == "/models/flux"


def test_unknown_tiny_name_lists_the_registered_ones():
    with pytest.raises(KeyError, match="tiny/flux-kontext"):
        resolve_model("tiny/nope")


def test_concurrent_resolutions_build_once(fake_models):
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(resolve_model("tiny/fake"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(BUILDS) == 1
    assert len(set(results)) == 1
    folder = Path(results[0])
    assert folder.parent == fake_models and folder.name.startswith("fake-")
    assert (folder / "weights.txt").read_text() == "tiny"
    assert resolve_model("tiny/fake") == results[0] and len(BUILDS) == 1  # cached
    assert not [p for p in fake_models.iterdir() if ".building-" in p.name]


def test_a_failed_build_leaves_nothing_behind(fake_models):
    with pytest.raises(RuntimeError, match="builder failed"):
        resolve_model("tiny/broken")
    assert not tiny_model_folder("tiny/broken").exists()
    assert not [p for p in fake_models.iterdir() if p.is_dir()]


def test_folder_name_carries_the_builder_fingerprint(fake_models):
    folder = tiny_model_folder("tiny/fake")
    assert folder == tiny_model_folder("tiny/fake", fake_models)
    assert len(folder.name.split("-")[-1]) == 12


def test_cli_builds_the_named_models_and_prints_their_folders(fake_models, tmp_path, capsys):
    folders = build_tiny.main(["tiny/fake", "--dir", str(tmp_path / "cli")])
    assert folders == [registry.tiny_model_folder("tiny/fake", tmp_path / "cli")]
    assert capsys.readouterr().out.strip() == f"tiny/fake\t{folders[0]}"
    with pytest.raises(SystemExit):
        build_tiny.main(["tiny/nope"])
