"""What SLURM says about jobs, from ``squeue`` and (when accounting is on) ``sacct``.

``squeue -t all`` knows pending and running jobs and, for a few minutes (``MinJobAge``),
those that ended; ``sacct`` knows every job and why it ended, but only where accounting
(slurmdbd) runs. Both are asked, so that job states are known with or without accounting: a
job in neither is reported as ended with an ``UNKNOWN`` state.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

from dstbench.suite.executors import JobState

#: Scheduler states in which a job has not started yet.
PENDING_STATES = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD"}
)
#: States in which it runs (or is finishing: its records are being written).
RUNNING_STATES = frozenset(
    {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
)
QUERY_TIMEOUT_SECONDS = 60


def phase_of(state: str) -> str:
    """``pending``, ``running`` or ``ended`` for a scheduler state (``CANCELLED by 0``...)."""
    word = state.split()[0].rstrip("+") if state else ""
    if word in PENDING_STATES:
        return "pending"
    if word in RUNNING_STATES:
        return "running"
    return "ended"


def _run(command: list[str]) -> str | None:
    """The command's output, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def squeue_states() -> dict[str, JobState]:
    """Every job of this user that ``squeue`` knows (array tasks one by one)."""
    out = _run(["squeue", "--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"])
    states: dict[str, JobState] = {}
    for line in (out or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            job_id, state, reason = parts
            states[job_id] = JobState(phase_of(state), state, "" if reason == "None" else reason)
    return states


def sacct_states(job_ids: Iterable[str]) -> dict[str, JobState] | None:
    """What accounting says about ``job_ids`` (None when ``sacct`` is missing or has no
    accounting to read)."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    out = _run(
        ["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o", "JobID,State,Reason,ExitCode"]
    )
    if out is None:
        return None
    states: dict[str, JobState] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or "[" in parts[0]:
            continue  # a still-pending range of array tasks: squeue lists them one by one
        job_id, state, reason, code = parts
        why = [] if reason in ("", "None") else [reason]
        if phase_of(state) == "ended" and code not in ("", "0:0"):
            why.append(f"exit code {code}")
        states[job_id] = JobState(phase_of(state), state, ", ".join(why))
    return states


def job_states(job_ids: Iterable[str]) -> dict[str, JobState]:
    """The state of each job in ``job_ids`` (``<array id>_<task>`` or plain ids)."""
    wanted = list(dict.fromkeys(job_ids))
    queue = squeue_states()
    accounting = sacct_states(wanted) or {}
    states = {}
    for job_id in wanted:
        live = queue.get(job_id)
        account = accounting.get(job_id)
        if live is not None and live.alive:
            states[job_id] = live  # squeue is the freshest word on live jobs
        elif account is not None and (account.phase == "ended" or live is None):
            states[job_id] = account
        elif live is not None:
            states[job_id] = live
        else:
            reason = "in neither squeue nor sacct" if accounting else "not in squeue"
            states[job_id] = JobState("ended", "UNKNOWN", reason)
    return states


def scancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs (array tasks by ``<array id>_<task>``: slurm refuses raw task ids)."""
    ids = list(job_ids)
    if ids:
        _run(["scancel", *ids])
