"""Fetch a preset's hub models into the Hugging Face cache once per node, before a job starts.

The roles load their models by hub id (`edit_rl.models.resolve_model` passes hub ids through), so
without a warm cache every rollout worker, learner rank and service replica downloads the same
weights at start-up, racing the placement and request timeouts. Run ``python -m jobs.predownload
--config PRESET`` on each node (the cluster's setup commands do) with ``HF_TOKEN`` set for the gated
repositories (FLUX.1-Kontext-dev, FLUX.2-klein, DINOv3) and ``HF_HOME`` on a filesystem the node's
Ray workers read; with ``HF_HOME`` on a filesystem every node mounts, the download happens once.

Only `repos_to_fetch` is tested here: the download itself needs the hub and the token, which the
test machines do not have.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from edit_rl.config.schema import Config
from edit_rl.models.registry import SHIPPED_MODELS, TINY_PREFIX

log = logging.getLogger(__name__)


def _is_hub_id(name: str) -> bool:
    """A hub id: not a tiny build, not a shipped checkpoint, not a local folder or path."""
    return not (name.startswith(TINY_PREFIX) or name in SHIPPED_MODELS or name == "synthetic"
                or name.startswith((".", "/", "~")) or Path(name).exists())


def repos_to_fetch(cfg: Config) -> list[str]:
    """The hub repositories a run of ``cfg`` loads: the editor (every component lives in its
    repository), the judge unless it is the synthetic one, and the consistency detector and
    feature model unless the detector is the synthetic one. Each once, in that order."""
    names = [cfg.editor.name_or_path]
    if cfg.judge.backend != "synthetic":
        names.append(cfg.judge.model)
    if cfg.consistency.detector != "synthetic":
        names += [cfg.consistency.detector, cfg.consistency.features]
    return list(dict.fromkeys(n for n in names if _is_hub_id(n)))


def download(repos: list[str]) -> list[str]:
    """``huggingface_hub.snapshot_download`` each repository into the cache ($HF_HOME) with
    $HF_TOKEN; returns their local folders. A gated repository without a token (or without
    accepted terms) fails with the hub's error, naming the repository."""
    from huggingface_hub import snapshot_download

    token = os.environ.get("HF_TOKEN")
    folders = []
    for repo in repos:
        log.info("fetching %s into %s", repo, os.environ.get("HF_HOME", "the default Hugging Face cache"))
        try:
            folders.append(snapshot_download(repo, token=token))
        except Exception as err:  # noqa: BLE001 - re-raised with the repository and the token hint
            hint = "" if token else " (HF_TOKEN is not set; gated repositories need it)"
            raise RuntimeError(f"cannot download {repo}{hint}: {type(err).__name__}: {err}") from err
    return folders
