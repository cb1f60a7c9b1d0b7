"""Process readings: the driver's resident set, each role's peak, CPU time (the object store's use:
``actors.object_store.store_stats``).

Roles are found among the driver's descendant processes by the title Ray gives them
(``ray::RolloutWorker``, ``ray::LearnerActor``, ``ray::ServeReplica:<app>:<deployment>``); a
process's peak is its VmHWM (Linux). The Ray cluster is local, so every process is on this machine.
"""
from __future__ import annotations

import os

import psutil

ROLE_TITLES = {  # substring of the process title -> role
    "RolloutWorker": "rollout worker",
    "LearnerActor": "learner rank",
    "ServeReplica:edit-rl-judge": "judge replica",
    "ServeReplica:edit-rl-consistency": "consistency replica",
    "ServeController": "serve controller",
    "ProxyActor": "serve proxy",
    "raylet": "raylet",
    "gcs_server": "gcs server",
    "actors.orphan_reaper": "orphan reaper",  # started by actors.ray_session.connect
}


def driver_rss() -> int:
    return psutil.Process().memory_info().rss


def peak_rss(pid: int) -> int:
    """VmHWM: the process's peak resident set, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def cpu_seconds(pids: list[int] | None = None, exclude: frozenset[int] = frozenset()) -> float:
    """User + system CPU seconds of ``pids``, or of this process and all its descendants (the
    driver, Ray's daemons, actors and replicas) but ``exclude``."""
    if pids is None:
        procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    else:
        procs = [psutil.Process(pid) for pid in pids]
    total = 0.0
    for proc in procs:
        if proc.pid in exclude:
            continue
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def cpu_by_role(exclude: frozenset[int] = frozenset()) -> dict[str, float]:
    """CPU seconds so far of this process ("driver") and each descendant, summed by role (titles as
    in ROLE_TITLES; "other Ray processes" for the rest: dashboard agent, log monitor, ...)."""
    out: dict[str, float] = {}
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        if proc.pid in exclude:
            continue
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        if proc.pid == os.getpid():
            role = "driver"
        else:
            title = _title(proc)
            role = next((r for key, r in ROLE_TITLES.items() if key in title), "other Ray processes")
        out[role] = out.get(role, 0.0) + times.user + times.system
    return out


def _title(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def role_peaks() -> dict[str, list[int]]:
    """role -> peak RSS of each of its processes (the driver included)."""
    out: dict[str, list[int]] = {"driver": [peak_rss(os.getpid())]}
    for proc in psutil.Process().children(recursive=True):
        role = next((r for key, r in ROLE_TITLES.items() if key in _title(proc)), None)
        if role is not None:
            try:
                out.setdefault(role, []).append(peak_rss(proc.pid))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return out
