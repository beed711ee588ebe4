"""What SLURM says about jobs, from ``squeue`` and (when accounting is on) ``sacct``.

``squeue -t all`` knows pending and running jobs and, for a few minutes (``MinJobAge``),
those that ended; ``sacct`` knows every job and why it ended, but only where accounting
(slurmdbd) runs. Both are asked, so that job states are known with or without accounting: a
job in neither is reported as ended with an ``UNKNOWN`` state, but only when ``squeue``
answered. A scheduler that cannot be asked (its controller down, a query timing out) says
nothing about whether a job ended: such a job's phase is ``unknown``, and whoever follows it
keeps waiting.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

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
#: Pending reasons that never clear by themselves: the job asks for what the partition, the
#: account or the QOS can never give it, or for nodes that do not exist.
NEVER_CLEARS = frozenset(
    {
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxGRESPerJob",
        "QOSMaxMemoryPerJob",
        "QOSMaxNodePerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxNodePerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
    }
)
#: ``111_[0-3,5%2]``: a range of array tasks as ``sacct`` reports tasks that never started.
_ARRAY_RANGE = re.compile(r"^(?P<array>\d+)_\[(?P<tasks>[0-9,\-]+)(?:%\d+)?\]$")


#: What the commonest pending reasons mean, for the user.
REASON_HINTS = {
    "Resources": "waiting for free CPUs, GPUs or memory",
    "Priority": "jobs of higher priority go first",
    "BeginTime": "not before its start time (a requeued job waits a little)",
    "Dependency": "waiting for another job",
    "JobArrayTaskLimit": "the array's array_parallelism is reached",
    "QOSMaxJobsPerUserLimit": "your QOS's limit of jobs at once is reached",
    "AssocMaxJobsLimit": "your account's limit of jobs at once is reached",
    "PartitionConfig": "the partition can never give what the task asks (CPUs, GPUs, "
    "memory, time): change the executor's parameters",
    "PartitionTimeLimit": "the task's time is above the partition's limit",
    "PartitionNodeLimit": "the task asks for more nodes than the partition has",
    "BadConstraints": "no node has the features asked for (constraint)",
    "InvalidAccount": "the account is not valid",
    "InvalidQOS": "the QOS is not valid",
    "ReqNodeNotAvail": "a node it needs is not available",
}


def reason_hint(reason: str) -> str:
    """``: <what the reason means>`` for a known pending reason, else empty."""
    hint = REASON_HINTS.get(reason.split(",")[0].strip())
    return f": {hint}" if hint else ""


def never_clears(reason: str) -> bool:
    """Whether a pending reason is one that no amount of waiting clears."""
    word = reason.split(",")[0].strip()
    if word in NEVER_CLEARS:
        return True
    return word == "ReqNodeNotAvail" and _absent_nodes(reason)


def _absent_nodes(reason: str) -> bool:
    """``ReqNodeNotAvail, UnavailableNodes:n1,n2``: whether a named node is not in ``sinfo``."""
    nodes = reason.partition("UnavailableNodes:")[2].strip()
    if not nodes:
        return False
    known = _run(["sinfo", "-h", "-N", "-o", "%N"])
    if known.out is None:
        return False
    names = set(known.out.split())
    return any(node not in names for node in nodes.split(","))


@dataclass(frozen=True)
class Answer:
    """A scheduler command's standard output, or None and why it could not be had."""

    out: str | None
    error: str = ""


def phase_of(state: str) -> str:
    """``pending``, ``running`` or ``ended`` for a scheduler state (``CANCELLED by 0``...)."""
    word = state.split()[0].rstrip("+") if state else ""
    if word in PENDING_STATES:
        return "pending"
    if word in RUNNING_STATES:
        return "running"
    return "ended"


def _run(command: list[str]) -> Answer:
    """The command's output, or why there is none (missing, failed, timed out)."""
    if shutil.which(command[0]) is None:
        return Answer(None, f"{command[0]} is not on PATH")
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return Answer(None, f"{command[0]} did not answer within {QUERY_TIMEOUT_SECONDS} s")
    except OSError as exc:
        return Answer(None, f"{command[0]}: {exc}")
    if result.returncode != 0:
        said = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        return Answer(None, f"{command[0]}: {said}")
    return Answer(result.stdout)


def squeue_states() -> dict[str, JobState] | None:
    """Every job of this user that ``squeue`` knows (array tasks one by one); None when
    ``squeue`` cannot be asked."""
    return _squeue()[0]


def _squeue() -> tuple[dict[str, JobState] | None, str]:
    answer = _run(["squeue", "--me", "-h", "-r", "-t", "all", "-o", "%i|%T|%r"])
    if answer.out is None:
        return None, answer.error
    states: dict[str, JobState] = {}
    for line in answer.out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            job_id, state, reason = parts
            states[job_id] = JobState(phase_of(state), state, "" if reason == "None" else reason)
    return states, ""


def sacct_states(job_ids: Iterable[str]) -> dict[str, JobState] | None:
    """What accounting says about ``job_ids`` (None when ``sacct`` is missing or has no
    accounting to read)."""
    wanted = list(job_ids)
    arrays = sorted({job_id.split("_")[0] for job_id in wanted})
    if not arrays:
        return {}
    answer = _run(
        ["sacct", "-n", "-P", "-X", "-j", ",".join(arrays), "-o", "JobID,State,Reason,ExitCode"]
    )
    if answer.out is None:
        return None
    states: dict[str, JobState] = {}
    for line in answer.out.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        listed, state, reason, code = parts
        why = [] if reason in ("", "None") else [reason]
        if phase_of(state) == "ended" and code not in ("", "0:0"):
            why.append(f"exit code {code}")
        for job_id in expand_array_range(listed):
            states[job_id] = JobState(phase_of(state), state, ", ".join(why))
    # An array none of whose tasks started (cancelled while held or pending) is one line
    # under the array's own id: it speaks for each of its tasks.
    for job_id in wanted:
        array, _, task = job_id.partition("_")
        if task and job_id not in states and array in states:
            states[job_id] = states[array]
    return states


def expand_array_range(job_id: str) -> list[str]:
    """``111_[0-2,5%2]`` -> ``111_0, 111_1, 111_2, 111_5``; any other id -> itself.

    ``sacct`` reports array tasks that never started (still pending, or cancelled while
    pending) as one such range.
    """
    match = _ARRAY_RANGE.match(job_id)
    if match is None:
        return [job_id]
    array = match["array"]
    tasks: list[int] = []
    for part in match["tasks"].split(","):
        first, _, last = part.partition("-")
        if not first:
            continue
        tasks.extend(range(int(first), int(last or first) + 1))
    return [f"{array}_{task}" for task in tasks]


def job_states(job_ids: Iterable[str]) -> dict[str, JobState]:
    """The state of each job in ``job_ids`` (``<array id>_<task>`` or plain ids)."""
    wanted = list(dict.fromkeys(job_ids))
    if not wanted:
        return {}
    queue, unreachable = _squeue()
    accounting = sacct_states(wanted) or {}
    states = {}
    for job_id in wanted:
        live = (queue or {}).get(job_id)
        account = accounting.get(job_id)
        if live is not None and live.alive:
            states[job_id] = live  # squeue is the freshest word on live jobs
        elif account is not None and (account.phase == "ended" or live is None):
            states[job_id] = account
        elif live is not None:
            states[job_id] = live
        elif queue is None:
            # No answer is not an answer: the job may well be running.
            states[job_id] = JobState("unknown", "UNKNOWN", f"cannot ask SLURM: {unreachable}")
        else:
            reason = "in neither squeue nor sacct" if accounting else "not in squeue"
            states[job_id] = JobState("ended", "UNKNOWN", reason)
    return states


def jobs_by_comment() -> dict[str, list[str]] | None:
    """Comment -> this user's job ids that ``squeue`` knows (arrays by their array id); None
    when ``squeue`` cannot be asked."""
    answer = _run(["squeue", "--me", "-h", "-t", "all", "-o", "%F|%k"])
    if answer.out is None:
        return None
    found: dict[str, list[str]] = {}
    for line in answer.out.splitlines():
        array, sep, comment = line.strip().partition("|")
        if sep and comment and array not in found.get(comment, []):
            found.setdefault(comment, []).append(array)
    return found


def scancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs (array tasks by ``<array id>_<task>``: slurm refuses raw task ids)."""
    ids = list(job_ids)
    if ids:
        _run(["scancel", *ids])


#: ``sinfo``'s format for :func:`partition_slots`: one line per node and partition.
SINFO_NODES_FORMAT = "%N|%P|%c|%m|%G|%t"
#: Node states (``sinfo %t``, without its ``*~#!%$@^-`` suffixes) in which a node takes no new
#: job: it holds no slot for an array about to be submitted.
_NODE_STATES_NO_JOBS = frozenset(
    {"down", "drain", "drng", "fail", "failg", "maint", "futr", "inval", "unk", "npc", "boot"}
)
_GPUS = re.compile(r"gpu(?::[^:,()]+)?:(\d+)")


@dataclass(frozen=True)
class Slots:
    """How many tasks of one shape a partition holds at once, and what limits them."""

    count: int
    #: Usable nodes of the partition.
    nodes: int
    #: ``CPUs``, ``GPUs`` or ``memory``: what ran out first on most nodes.
    limit: str
    #: The partition read (its name, or the cluster's default one).
    partition: str


def partition_slots(
    text: str, partition: str, cpus_per_task: int, gpus_per_job: int = 0, mem_gb: float = 0.0
) -> Slots:
    """The tasks of ``cpus_per_task`` CPUs (and ``gpus_per_job`` GPUs, ``mem_gb`` GB) that the
    nodes of ``partition`` hold at once, from ``sinfo -h -N -o SINFO_NODES_FORMAT``.

    ``partition`` empty means the cluster's default (the one ``sinfo`` marks with ``*``). A
    task runs on one node, so each node counts on its own; nodes that take no job (down,
    drained) count for nothing. Memory counts only when ``mem_gb`` is set (else the cluster's
    per-CPU default applies, which CPUs already bound).
    """
    seen: set[str] = set()
    count = nodes = 0
    limits: dict[str, int] = {}
    name = partition
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        node, part, cpus, memory, gres, state = fields
        default = part.endswith("*")
        part = part.rstrip("*")
        if (part != partition if partition else not default) or node in seen:
            continue
        name = part
        seen.add(node)
        if state.rstrip("*~#!%$@^-").lower() in _NODE_STATES_NO_JOBS:
            continue
        nodes += 1
        fits = {"CPUs": _leading_int(cpus) // cpus_per_task}
        if gpus_per_job:
            fits["GPUs"] = sum(int(n) for n in _GPUS.findall(gres)) // gpus_per_job
        if mem_gb:
            fits["memory"] = int(_leading_int(memory) // (mem_gb * 1024))
        limit = min(fits, key=lambda k: fits[k])
        limits[limit] = limits.get(limit, 0) + 1
        count += max(0, fits[limit])
    limit = max(limits, key=lambda k: limits[k]) if limits else "CPUs"
    return Slots(count, nodes, limit, name or "default")


def _leading_int(text: str) -> int:
    """``"7000+"`` or ``"64"`` -> the number it starts with (0 when none)."""
    found = re.match(r"\d+", text.strip())
    return int(found.group()) if found else 0


def sinfo_slots(
    partition: str, cpus_per_task: int, gpus_per_job: int = 0, mem_gb: float = 0.0
) -> Slots | str:
    """:func:`partition_slots` as ``sinfo`` says now, or why it cannot be asked."""
    answer = _run(["sinfo", "-h", "-N", "-o", SINFO_NODES_FORMAT])
    if answer.out is None:
        return answer.error
    return partition_slots(answer.out, partition, cpus_per_task, gpus_per_job, mem_gb)
