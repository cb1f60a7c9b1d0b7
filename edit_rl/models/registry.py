"""Resolve a model name to what ``from_pretrained`` takes: "tiny/..." names become local folders.

A real run names hub ids (``black-forest-labs/FLUX.1-Kontext-dev``) or paths; those pass through
unchanged. A ``tiny/<family>`` name is a deterministic random-weight build of the same classes,
written once into the tiny-model cache (env ``EDIT_RL_TINY_MODELS``, default
``<repo>/.cache/tiny-models``) and then loaded by exactly the same ``from_pretrained`` code path.
Several processes (Ray workers) may ask at once: the first builds under a file lock into a
temporary folder and renames it into place; the others wait and reuse it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from filelock import FileLock

TINY_PREFIX = "tiny/"
REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_LOCK_TIMEOUT_S = 1800.0

Builder = Callable[[Path], None]

# name -> "module:function" of its builder, build(folder: Path) -> None. Imported only when that
# name is resolved, so one family's heavy imports (or a half-written builder) cost nothing to the
# others. To add a model, add one line here.
TINY_MODELS: dict[str, str] = {
    "tiny/flux-kontext": "edit_rl.models.tiny.flux_kontext:build_tiny_flux_kontext",
    "tiny/grounding-dino": "edit_rl.models.tiny.grounding_dino:build_tiny_grounding_dino",
    "tiny/dinov3": "edit_rl.models.tiny.dinov3:build_tiny_dinov3",
    "tiny/qwen3-vl": "edit_rl.models.tiny.qwen3_vl:build_tiny_qwen3_vl",
    "tiny/flux2-klein": "edit_rl.models.tiny.flux2_klein:build_tiny_flux2_klein",
    "tiny/qwen-image-edit": "edit_rl.models.tiny.qwen_image_edit:build_tiny_qwen_image_edit",
    "tiny/shapes-kontext": "edit_rl.models.tiny.shapes_kontext:build_tiny_shapes_kontext",
}
# Trained checkpoints that ship with the repository: name -> folder relative to the repo root.
SHIPPED_MODELS: dict[str, str] = {"shapes/base": "checkpoints/shapes-base"}


def tiny_models_dir() -> Path:
    """The tiny-model cache: $EDIT_RL_TINY_MODELS, else <repo>/.cache/tiny-models."""
    return Path(os.environ.get("EDIT_RL_TINY_MODELS", REPO_ROOT / ".cache" / "tiny-models"))


def _source_fingerprint(module: ModuleType) -> str:
    """sha256 (12 hex) of the module's source and of the edit_rl modules it imports names from."""
    modules = {module.__name__: module}
    for value in vars(module).values():
        owner = value if isinstance(value, ModuleType) else inspect.getmodule(value)
        if owner is not None and owner.__name__.startswith("edit_rl."):
            modules[owner.__name__] = owner
    digest = hashlib.sha256()
    for module_name in sorted(modules):
        digest.update(inspect.getsource(modules[module_name]).encode())
    return digest.hexdigest()[:12]


def _load_builder(name: str) -> tuple[Builder, str]:
    """The builder of a registered tiny name and the fingerprint of its source (`_source_fingerprint`)."""
    if name not in TINY_MODELS:
        raise KeyError(f"unknown tiny model {name!r}; registered: {sorted(TINY_MODELS)}")
    module_name, _, function_name = TINY_MODELS[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, function_name), _source_fingerprint(module)


def tiny_model_folder(name: str, cache_dir: Path | None = None) -> Path:
    """Where ``name`` lives once built: <cache>/<family>-<fingerprint of its builder's source>.

    The fingerprint makes an edited builder (or an edited edit_rl helper it imports) produce a fresh
    folder instead of reusing a stale one.
    """
    _, fingerprint = _load_builder(name)
    family = name[len(TINY_PREFIX):].replace("/", "--")
    return (cache_dir or tiny_models_dir()) / f"{family}-{fingerprint}"


def build_tiny_model(name: str, cache_dir: Path | None = None) -> Path:
    """Build ``name`` into the cache unless already there (file-locked, atomic rename); its folder."""
    builder, _ = _load_builder(name)
    folder = tiny_model_folder(name, cache_dir)
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=BUILD_LOCK_TIMEOUT_S):
        if folder.is_dir():  # another process built it while we waited
            return folder
        staging = folder.with_name(f"{folder.name}.building-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            builder(staging)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def resolve_model(name_or_path: str, cache_dir: Path | None = None) -> str:
    """A "tiny/..." name -> its local folder (built on first use); a `SHIPPED_MODELS` name -> its
    folder in the repo; anything else unchanged."""
    if name_or_path in SHIPPED_MODELS:
        return str(REPO_ROOT / SHIPPED_MODELS[name_or_path])
    if name_or_path.startswith(TINY_PREFIX):
        return str(build_tiny_model(name_or_path, cache_dir))
    return name_or_path
