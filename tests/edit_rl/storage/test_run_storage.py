"""Checkpoint storage through pyarrow.fs on a local file:// URI: staged upload and download, the
commit rule (driver.json last), and the refusal of a relative run folder on several nodes."""
import json

import pytest

from edit_rl.storage import (RunStorage, check_storage_reaches_every_node, is_reachable, staged_download,
                             staged_upload)


def test_a_staged_folder_uploads_on_exit_and_downloads_back(tmp_path):
    uri = f"file://{tmp_path}/store/step_000001/learner"
    with staged_upload(uri) as folder:
        (folder / "top.pt").write_bytes(b"top")  # a file at the top and one in a subfolder
        (folder / "sub").mkdir()
        (folder / "sub" / "state.pt").write_bytes(b"abc")
        (folder / "top.json").write_text("{}")
    assert (tmp_path / "store/step_000001/learner/sub/state.pt").read_bytes() == b"abc"
    assert (tmp_path / "store/step_000001/learner/top.pt").read_bytes() == b"top"
    with staged_download(uri) as local:
        assert (local / "sub" / "state.pt").read_bytes() == b"abc" and (local / "top.json").read_text() == "{}"
        assert not str(local).startswith(str(tmp_path))  # a copy on this node, not the storage itself
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        with staged_download(f"file://{tmp_path}/store/step_000009/learner"):
            pass


def test_nothing_uploads_when_the_writer_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_upload(f"file://{tmp_path}/store/x") as folder:
            (folder / "half.pt").write_bytes(b"1")
            raise RuntimeError("rank failed mid-write")
    assert not (tmp_path / "store").exists()


def test_only_folders_with_their_driver_state_count_as_checkpoints(tmp_path):
    store = RunStorage(f"file://{tmp_path}/ckpts")
    assert store.committed() == []
    for step in (1, 2):
        name = f"step_{step:06d}"
        store.begin(name)
        store.write_bytes(name, "inflight_weights.pt", b"w")
        store.commit(name, json.dumps({"step": step}).encode())
    store.begin("step_000003")  # a crash before its commit
    store.write_bytes("step_000003", "inflight_weights.pt", b"w")
    assert store.committed() == ["step_000001", "step_000002"]
    assert json.loads(store.read_bytes("step_000002", "driver.json")) == {"step": 2}
    # Re-saving a step uncommits it first and drops its old files.
    store.begin("step_000002")
    assert store.committed() == ["step_000001"] and not (tmp_path / "ckpts/step_000002/inflight_weights.pt").exists()


def test_the_storage_root_is_under_the_uri_or_the_absolute_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    on_uri = RunStorage.for_run(f"file://{tmp_path}/bucket/", "runs/edit-rl-20261207-000000", "runs/x/checkpoints")
    assert on_uri.root == f"file://{tmp_path}/bucket/edit-rl-20261207-000000/checkpoints"
    local = RunStorage.for_run(None, "runs/r", "runs/r/checkpoints")
    assert local.root == str(tmp_path / "runs/r/checkpoints")
    shared = RunStorage.for_run(f"{tmp_path}/shared", "runs/r", "runs/r/checkpoints")
    assert shared.uri("step_000001") == f"{tmp_path}/shared/r/checkpoints/step_000001"


def test_a_relative_location_is_refused():
    with pytest.raises(ValueError, match="storage location 'ckpt/x' is relative"):
        RunStorage("ckpt/x")


def test_a_relative_run_folder_is_refused_on_several_nodes_only():
    check_storage_reaches_every_node(None, "runs/r", alive_nodes=1)
    check_storage_reaches_every_node(None, "/shared/runs/r", alive_nodes=3)
    check_storage_reaches_every_node("s3://bucket/p", "runs/r", alive_nodes=3)
    with pytest.raises(ValueError, match="'runs/r' is a relative path and the Ray cluster has 2 alive nodes"):
        check_storage_reaches_every_node(None, "runs/r", alive_nodes=2)


def test_the_reachability_marker_is_seen_where_the_storage_is(tmp_path):
    marker = RunStorage(f"file://{tmp_path}/c").mark_reachable()
    assert is_reachable(marker)
    assert not is_reachable(f"file://{tmp_path}/elsewhere/.reachable")
