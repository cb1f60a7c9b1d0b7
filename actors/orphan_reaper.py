"""Ends a local Ray's processes when the driver that started them dies (``python -m actors.orphan_reaper PID``).

A driver killed with SIGKILL cannot shut its local Ray down, and some of Ray's processes (the
dashboard and runtime-env agents) outlive it. ``actors.ray_session.connect`` starts this reaper,
in its own session, before it starts a local Ray: the reaper notes the driver's descendants
every ``POLL_S`` while the driver lives; once it is gone it kills those still running (each
checked by its creation time, so a reused pid is left alone) and theirs, then exits.
"""
from __future__ import annotations

import os
import sys
import time

import psutil

POLL_S = 0.5


def _tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def watch(driver_pid: int, poll_s: float = POLL_S) -> int:
    """Follow ``driver_pid``'s descendants until it exits, then kill them; returns how many."""
    me = os.getpid()
    known: dict[int, float] = {}
    try:
        driver = psutil.Process(driver_pid)
        while driver.is_running() and driver.status() != psutil.STATUS_ZOMBIE:
            known.update((p.pid, p.create_time()) for p in _tree(driver)[1:] if p.pid != me)
            time.sleep(poll_s)
    except psutil.Error:
        pass
    killed = 0
    for _ in range(2):  # a second pass for what a dying process started meanwhile
        for pid, created in list(known.items()):
            try:
                process = psutil.Process(pid)
                if process.create_time() != created:
                    continue
                for p in _tree(process):
                    known.setdefault(p.pid, p.create_time())
                    if p.pid != me and p.is_running():
                        p.kill()
                        killed += 1
            except psutil.Error:
                continue
        time.sleep(poll_s)
    return killed


if __name__ == "__main__":
    watch(int(sys.argv[1]))
