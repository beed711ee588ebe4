"""Processes that plugins start do not outlive their runs.

A worker process is made the leader of a process group of its own; whatever a plugin starts
during a run (a ``subprocess.Popen`` it never waits for, a daemon of its own) is in that
group. After each group of runs the worker kills the other members of its group
(:func:`reap_group`), and when a worker ends the driver kills what is left of its group
(:func:`kill_group`), so that nothing holds the suite's output pipe open after it finished
(``dstbench suite ... | cat`` returns) and nothing keeps writing in the results directory.

A process that leaves the group on purpose (``setsid``) is not followed. Dask runs the runs
in a run server, a subprocess of its worker, in the worker's group (killing a worker's group
kills its runs): the server kills its own descendants when each run ends
(:func:`reap_descendants`).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def lead_own_group() -> None:
    """Make this process the leader of a new process group (no-op where unsupported)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpgid(0, 0)


def group_members(pgid: int) -> list[int]:
    """The ids of the processes in process group ``pgid`` (Linux ``/proc``; else none)."""
    members: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if len(fields) > 2 and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def reap_group() -> int:
    """Kill (SIGKILL) every other process of this process's group, when it leads one; reap
    those that are its children. Return how many were killed."""
    own = os.getpid()
    with contextlib.suppress(AttributeError, OSError):
        if os.getpgid(0) != own:
            return 0
    killed = 0
    for pid in group_members(own):
        if pid == own:
            continue
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    for pid in group_members(own):
        if pid != own:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, 0)
    return killed


def _parents() -> dict[int, int]:
    """Every process id and its parent's (Linux ``/proc``; else empty)."""
    parents: dict[int, int] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return parents
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return parents


def reap_descendants() -> int:
    """Kill (SIGKILL) every descendant of this process and reap its children; return how
    many were killed (for runs whose process cannot lead a group of its own: dask's)."""
    parents = _parents()
    own = os.getpid()
    found: set[int] = set()
    frontier = {own}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in found:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
    return len(found)


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of the process group ``pgid`` (a finished worker's)."""
    with contextlib.suppress(AttributeError, OSError):
        os.killpg(pgid, signal.SIGKILL)
