"""The run folder: where a training run leaves its config, metrics, samples and checkpoints.

    <output_dir>/<run_name>-<YYYYmmdd-HHMMSS>/
        config.yaml          the resolved config (edit_rl.config.save_config; load_config reads it back)
        metrics.jsonl        one JSON line per step (MetricsLogger)
        events.out.tfevents.*  the same scalars for TensorBoard
        samples/step_XXXXXX.png  sample grids (save_sample_grid)
        checkpoints/

A fresh run gets a new timestamped folder (or an explicit, empty or absent one). A resumed run
reuses an existing folder: the explicit one, else the newest <run_name>-* under output_dir.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from edit_rl.config import Config, save_config

_RUN_NAME_TAIL = re.compile(r"(?P<stamp>\d{8}-\d{6})(?:-(?P<n>\d+))?")


@dataclass(frozen=True)
class RunDir:
    path: Path
    resumed: bool

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:06d}.png"


def create_run_dir(cfg: Config, output_dir: str | Path | None = None, run_dir: str | Path | None = None,
                   resume: bool = False) -> RunDir:
    """Make (or, on resume, find) the run folder, save `cfg` as config.yaml, add samples/ and checkpoints/.

    output_dir defaults to cfg.output_dir. On resume the saved config is replaced by `cfg`, the
    config the run goes on with. A fresh run refuses an explicit folder that already has files.
    """
    parent = Path(output_dir if output_dir is not None else cfg.output_dir)
    if resume:
        path = Path(run_dir) if run_dir is not None else latest_run_dir(parent, cfg.run_name)
        if path is None or not path.is_dir():
            where = run_dir if run_dir is not None else f"{parent}/{cfg.run_name}-*"
            raise FileNotFoundError(f"--resume: no run folder to resume at {where}")
    elif run_dir is not None:
        path = Path(run_dir)
        if path.is_dir() and any(path.iterdir()):
            raise FileExistsError(f"run folder {path} is not empty; pass --resume to continue that run")
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = _new_timestamped_dir(parent, cfg.run_name)
    run = RunDir(path=path, resumed=resume)
    run.samples_dir.mkdir(exist_ok=True)
    run.checkpoints_dir.mkdir(exist_ok=True)
    save_config(cfg, run.config_path)
    return run


def latest_run_dir(output_dir: str | Path, run_name: str) -> Path | None:
    """The newest <output_dir>/<run_name>-<YYYYmmdd-HHMMSS>[-n] folder, or None."""
    parent = Path(output_dir)
    found = []
    for p in parent.glob(f"{run_name}-*") if parent.is_dir() else []:
        m = _RUN_NAME_TAIL.fullmatch(p.name[len(run_name) + 1:])
        if p.is_dir() and m:
            found.append((m["stamp"], int(m["n"] or 1), p))
    return max(found)[2] if found else None


def _new_timestamped_dir(parent: Path, run_name: str) -> Path:
    base = f"{run_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):  # two runs started in the same second get -2, -3, ...
        path = parent / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a new run folder {parent / base}")
