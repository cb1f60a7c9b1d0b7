"""A run's checkpoint storage through pyarrow.fs: a shared absolute path, or a URI (``file://``,
``s3://``, ``gs://``, ``hdfs://``) that every node reaches.

A learner rank writes into a local staging folder on its own node and uploads it
(`staged_upload`); a rank that reads a checkpoint downloads it into a local folder first
(`staged_download`). The driver owns the checkpoint folders (`RunStorage`): it clears a folder
before the ranks write into it, and commits it by writing ``driver.json`` last, in one object
(written under a temporary name and moved into place), so a folder without it is an unfinished
checkpoint that resume skips. The same rule holds on object stores, where folders cannot be
renamed.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

COMMIT_FILE = "driver.json"  # written last: its presence commits a checkpoint folder
REACHABILITY_FILE = ".reachable"


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of an absolute path or a URI; a relative path is refused."""
    if "://" not in uri and not PurePosixPath(uri).is_absolute():
        raise ValueError(f"storage location {uri!r} is relative: give an absolute path on a filesystem every "
                         "node mounts, or a URI (file://, s3://, gs://, hdfs://)")
    return pafs.FileSystem.from_uri(uri)


def _join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def upload_folder(local: str | Path, uri: str) -> None:
    """Copy a local folder's files (recursively) to ``uri``; an empty folder copies nothing."""
    fs, path = _filesystem(uri)
    if any(Path(local).iterdir()):
        fs.create_dir(path, recursive=True)
        pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download_folder(uri: str, local: str | Path) -> None:
    """Copy the files under ``uri`` (recursively) into a local folder."""
    fs, path = _filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"no checkpoint folder at {uri}")
    pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())


@contextlib.contextmanager
def staged_upload(uri: str) -> Iterator[Path]:
    """A local staging folder; what was written into it is uploaded to ``uri`` on a clean exit."""
    with tempfile.TemporaryDirectory(prefix="edit-rl-upload-") as staging:
        yield Path(staging)
        upload_folder(staging, uri)


@contextlib.contextmanager
def staged_download(uri: str) -> Iterator[Path]:
    """A local folder holding a copy of the files under ``uri`` (removed on exit)."""
    with tempfile.TemporaryDirectory(prefix="edit-rl-download-") as staging:
        download_folder(uri, staging)
        yield Path(staging)


def check_storage_reaches_every_node(storage: str | None, run_path: str | Path, alive_nodes: int) -> None:
    """Refuse checkpoints under a relative run folder on a cluster of more than one node: learner
    rank 0 would write them on its own node, where the driver (on the head node) can neither
    commit nor resume them, and they would vanish with the node."""
    if storage is None and alive_nodes > 1 and not Path(run_path).is_absolute():
        raise ValueError(
            f"the run folder {str(run_path)!r} is a relative path and the Ray cluster has {alive_nodes} alive nodes: "
            "learner rank 0 would write checkpoints and the trained LoRA on its own node, out of the driver's "
            "reach. Set trainer.storage to a URI every node reaches (s3://bucket/prefix, gs://..., hdfs://...) or "
            "an absolute path on a shared filesystem, or pass --output-dir on a shared filesystem")


class RunStorage:
    """The checkpoint folders ``<root>/step_NNNNNN/`` of one run, seen by the driver."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs, self.path = _filesystem(self.root)

    @classmethod
    def for_run(cls, storage: str | None, run_path: str | Path, run_checkpoints: str | Path) -> "RunStorage":
        """``<storage>/<run folder name>/checkpoints`` with ``trainer.storage`` set, else the run
        folder's own checkpoints/ (made absolute)."""
        if storage is None:
            return cls(str(Path(run_checkpoints).resolve()))
        return cls(_join(storage, Path(run_path).name, "checkpoints"))

    def uri(self, *parts: str) -> str:
        return _join(self.root, *parts)

    def _p(self, *parts: str) -> str:
        return _join(self.path, *parts)

    def begin(self, name: str) -> str:
        """Empty checkpoint folder ``name`` (uncommitted first: its commit file goes before the
        rest) and return its URI."""
        folder = self._p(name)
        if self.fs.get_file_info(self._p(name, COMMIT_FILE)).type == pafs.FileType.File:
            self.fs.delete_file(self._p(name, COMMIT_FILE))
        if self.fs.get_file_info(folder).type == pafs.FileType.Directory:
            self.fs.delete_dir_contents(folder)
        self.fs.create_dir(folder, recursive=True)
        return self.uri(name)

    def write_bytes(self, name: str, filename: str, data: bytes) -> None:
        with self.fs.open_output_stream(self._p(name, filename)) as out:
            out.write(data)

    def read_bytes(self, name: str, filename: str) -> bytes:
        with self.fs.open_input_stream(self._p(name, filename)) as src:
            return src.read()

    def commit(self, name: str, driver_state: bytes) -> None:
        """Write the commit file (the driver's state) last, whole or not at all."""
        partial = f".{COMMIT_FILE}.partial"
        self.write_bytes(name, partial, driver_state)
        self.fs.move(self._p(name, partial), self._p(name, COMMIT_FILE))

    def committed(self) -> list[str]:
        """The committed checkpoint folders' names, oldest first."""
        if self.fs.get_file_info(self.path).type != pafs.FileType.Directory:
            return []
        names = [info.base_name for info in self.fs.get_file_info(pafs.FileSelector(self.path))
                 if info.type == pafs.FileType.Directory and info.base_name.startswith("step_")]
        return sorted(n for n in names if self.fs.get_file_info(self._p(n, COMMIT_FILE)).type == pafs.FileType.File)

    def mark_reachable(self) -> str:
        """Write a marker the learner ranks look for (`is_reachable`); returns its URI."""
        self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(self._p(REACHABILITY_FILE)) as out:
            out.write(b"written by the driver")
        return self.uri(REACHABILITY_FILE)


def is_reachable(marker_uri: str) -> bool:
    """Whether this process sees the marker the driver wrote (`RunStorage.mark_reachable`)."""
    fs, path = _filesystem(marker_uri)
    return fs.get_file_info(path).type == pafs.FileType.File
