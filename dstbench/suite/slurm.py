"""The built-in ``slurm`` executor: a suite's runs as SLURM job arrays, through submitit.

One array task trains several runs in one process, so that each pays Python's start and
torch's import once, not once per run. By default (``pack = 0``) the array has as many tasks
as can run at once and no more: ``array_parallelism`` when set, else the tasks of
``cpus_per_task`` CPUs (and ``gpus_per_job`` GPUs, ``mem_gb`` memory) that the partition's nodes
hold together (``sinfo``); more when finished runs of the same setups estimate that a task would
otherwise take over half its ``time``. Runs go to tasks round-robin (longest first to the least
loaded task when estimated), so that every task gets a mix of the suite's cells. ``pack = N``
puts N consecutive runs in each task instead. A task trains its runs as the engine groups
them, each group through :func:`dstbench.suite.worker.run_group` (the ``single`` engine: one
run at a time; ``batched``: compatible runs together), which writes each record atomically
into ``<results>/runs/``; its log is in ``<results>/slurm/<job id>/``.
The driver follows the suite from the records and the scheduler (``squeue``, and ``sacct``
where accounting runs) and keeps a :class:`~dstbench.suite.ledger.Ledger` of which job holds
which run, so that ``--detach`` can submit and return, and a later invocation never submits a
run whose job is still alive.

A job that ends without a record (``scancel``, time limit, out of memory, node failure) is
recorded as failed with the scheduler's state and the tail of its log. Preemption and time
limits follow submitit's checkpointing protocol: the run checkpoints (SIGTERM, or the
SIGUSR2 that SLURM sends ``signal_delay_s`` before the limit), the task requeues itself and
the requeued task resumes from the checkpoint. Every path must be on a filesystem that the
submitting machine and the nodes share.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dstbench.engine.interrupt import INTERRUPTED, INTERRUPTED_EXIT, stop_on_signals
from dstbench.errors import DstbenchError, SuiteError
from dstbench.io import read_json
from dstbench.suite import scheduler
from dstbench.suite.executors import ExecutionOptions, Job, JobState, Reporter
from dstbench.suite.ledger import Ledger

NAME = "slurm"
#: How a submission's token starts in the job's comment.
COMMENT_PREFIX = "dstbench:"
#: Lines of a job's log kept in the failure record of a run it did not finish.
LOG_TAIL_LINES = 30
#: Records that a task does not run again when it is requeued.
_FINISHED = ("ok", "diverged", "invalid")


def _requirements() -> None:
    """Fail with one line when submitit or SLURM's commands are missing."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SuiteError("executor 'slurm' needs submitit: pip install 'dstbench[slurm]'") from None
    if shutil.which("sbatch") is None:
        raise SuiteError(
            "executor 'slurm' needs SLURM's sbatch on PATH: run on a SLURM login node, or "
            "install SLURM (e.g. Debian's slurm-wlm)"
        )


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if value < minimum:
        raise SuiteError(
            f"executor 'slurm' parameter {name!r} expects an integer >= {minimum}, got {value}"
        )


def _sbatch_options(extra: Sequence[Any]) -> dict[str, Any]:
    """``["--exclusive", "--nice=10"]`` -> submitit's ``additional_parameters``."""
    options: dict[str, Any] = {}
    for item in extra:
        if not isinstance(item, str) or not item.startswith("--") or len(item) < 3:
            msg = (
                f"executor 'slurm' parameter 'extra': expected sbatch long options such as "
                f"'--exclusive' or '--nice=10', got {item!r}"
            )
            raise SuiteError(msg)
        key, sep, value = item[2:].partition("=")
        options[key] = value if sep else True
    return options


class SlurmExecutor:
    """Submit runs as SLURM job arrays (see the module docstring).

    :param partition: partition to submit to (empty: the cluster's default).
    :param time: time limit of a task, in minutes.
    :param gpus_per_job: GPUs each task asks for.
    :param cpus_per_task: CPUs each task asks for (and the torch threads it uses).
    :param mem_gb: memory per task in GB (0: the cluster's default).
    :param account: account to charge (empty: the user's default).
    :param qos: quality of service (empty: the default).
    :param constraint: node features required (``--constraint``).
    :param array_parallelism: tasks of an array running at once (0: no limit of ours).
    :param pack: runs per array task; 0 (default): automatic, as many tasks as run at once
        (see the module docstring).
    :param extra: further sbatch options, e.g. ``["--exclusive", "--nice=10"]``.
    :param poll: seconds between looks at the scheduler and the records.
    :param requeues: times a task is requeued when it reaches its time limit (it resumes from
        its checkpoint); the last attempt trains until the limit itself.
    :param patience: seconds the driver waits for a scheduler that does not answer (its
        controller down, a query timing out) before it stops following, leaving the jobs as
        they are.
    """

    def __init__(
        self,
        partition: str = "",
        time: int = 60,
        gpus_per_job: int = 0,
        cpus_per_task: int = 1,
        mem_gb: float = 0.0,
        account: str = "",
        qos: str = "",
        constraint: str = "",
        array_parallelism: int = 0,
        pack: int = 0,
        extra: tuple[str, ...] = (),
        poll: float = 5.0,
        requeues: int = 3,
        patience: float = 900.0,
    ) -> None:
        _positive("time", time)
        _positive("gpus_per_job", gpus_per_job, 0)
        _positive("cpus_per_task", cpus_per_task)
        _positive("array_parallelism", array_parallelism, 0)
        if pack < 0:
            raise SuiteError(
                f"executor 'slurm' parameter 'pack' expects an integer >= 1, or 0 for "
                f"automatic, got {pack}"
            )
        _positive("requeues", requeues, 0)
        if mem_gb < 0:
            raise SuiteError(
                f"executor 'slurm' parameter 'mem_gb' expects a number >= 0, got {mem_gb}"
            )
        if poll <= 0:
            raise SuiteError(f"executor 'slurm' parameter 'poll' expects seconds > 0, got {poll}")
        if patience < 0:
            raise SuiteError(
                f"executor 'slurm' parameter 'patience' expects seconds >= 0, got {patience}"
            )
        self.partition = partition
        self.time = time
        self.gpus_per_job = gpus_per_job
        self.cpus_per_task = cpus_per_task
        self.mem_gb = mem_gb
        self.account = account
        self.qos = qos
        self.constraint = constraint
        self.array_parallelism = array_parallelism
        self.pack = pack
        self.extra = _sbatch_options(extra)
        self.poll = poll
        self.requeues = requeues
        self.patience = patience
        _requirements()

    # --- the scheduler -------------------------------------------------------------------

    def job_states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """What SLURM says about each job (``dstbench status`` asks this)."""
        return scheduler.job_states(job_ids)

    def parameters(self) -> dict[str, Any]:
        """submitit's parameters for this executor's tasks."""
        params: dict[str, Any] = {
            "time": self.time,
            "cpus_per_task": self.cpus_per_task,
            "ntasks_per_node": 1,
            "nodes": 1,
            "stderr_to_stdout": True,
            # SLURM's warning (SIGUSR2) before the time limit: time to checkpoint, and never
            # the whole limit of a short task (submitit's 90 s default is more than a
            # 1-minute limit: every attempt would stop as it starts).
            "signal_delay_s": signal_delay(self.time),
        }
        if self.array_parallelism:
            params["array_parallelism"] = self.array_parallelism
        optional = {
            "partition": self.partition,
            "gpus_per_node": self.gpus_per_job,
            "account": self.account,
            "qos": self.qos,
            "constraint": self.constraint,
        }
        params.update({k: v for k, v in optional.items() if v})
        if self.mem_gb:
            params["mem"] = (
                f"{int(self.mem_gb)}GB"
                if self.mem_gb == int(self.mem_gb)
                else f"{int(self.mem_gb * 1024)}MB"
            )
        if self.extra:
            params["additional_parameters"] = dict(self.extra)
        return params

    # --- the driver ----------------------------------------------------------------------

    def run(self, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter) -> None:
        """Submit what is not queued already, then follow every job until it ends (or
        return at once with ``options.detach``)."""
        if options.output is None:
            raise SuiteError("executor 'slurm' needs the suite's results directory")
        root = Path(options.output).resolve()
        ledger = Ledger(root)
        _settle_intents(ledger, root, reporter)
        if not jobs:
            return
        known = ledger.load()
        tracker = _Tracker(root, reporter, self.patience)
        tracker.time_limit = self.time
        by_id = {job.run_id: job for job in jobs}
        alive_jobs = {e.job_id for r, e in known.items() if r in by_id and e.executor == NAME}
        states = scheduler.job_states(alive_jobs) if alive_jobs else {}
        fresh: list[Job] = []
        for job in jobs:
            entry = known.get(job.run_id)
            state = states.get(entry.job_id) if entry is not None else None
            # A job the scheduler cannot tell about may be running: follow it, never
            # submit its runs twice.
            if entry is not None and state is not None and (state.alive or state.unknown):
                tracker.adopt(entry.job_id, [r for r in entry.pack if r in by_id] or [job.run_id])
            else:
                fresh.append(job)
        submitted: list[str] = []
        try:
            if fresh:
                submitted = self._submit(fresh, options, root, ledger, tracker)
            for task in tracker.tasks.values():
                for run_id in task.run_ids:
                    reporter.queued(run_id, f"slurm {task.job_id}")
            if options.detach:
                return
            tracker.follow(self.poll)
        except KeyboardInterrupt:
            # Stop what this invocation submitted; its runs checkpoint on SIGTERM and the
            # next invocation resumes them. Jobs adopted from an earlier, detached
            # invocation are left alone.
            scheduler.scancel(submitted)
            raise

    def packs(
        self, jobs: Sequence[Job], root: Path | None, engine: str = "single"
    ) -> tuple[list[list[Job]], str]:
        """The runs of each array task, and one line that says how many and why.

        ``root``: the results directory, whose finished records estimate run times (None:
        no estimate).
        """
        if self.pack:
            packs = [list(jobs[i : i + self.pack]) for i in range(0, len(jobs), self.pack)]
            return packs, _shape_line(packs, f"pack = {self.pack}")
        seconds = _estimates(jobs, root, engine) if root is not None else None
        if self.array_parallelism:
            slots: int | None = self.array_parallelism
            why = f"array_parallelism = {self.array_parallelism}"
        else:
            found = scheduler.sinfo_slots(
                self.partition, self.cpus_per_task, self.gpus_per_job, self.mem_gb
            )
            if isinstance(found, str):
                slots, why = None, f"sinfo does not answer ({found}): one task per run"
            else:
                slots, why = found.count, _slots_text(found, self)
        count, capped = auto_tasks(len(jobs), slots, seconds, self.time)
        if capped:
            why += f"; {capped}"
        packs = balanced_packs(jobs, count, seconds)
        return packs, _shape_line(packs, f"pack auto: {why}")

    def _submit(
        self,
        jobs: Sequence[Job],
        options: ExecutionOptions,
        root: Path,
        ledger: Ledger,
        tracker: _Tracker,
    ) -> list[str]:
        import submitit

        folder = root / "slurm"
        folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=self.requeues)
        executor.update_parameters(job_name=f"dstbench-{root.name}", **self.parameters())
        task_options = ExecutionOptions(
            **{**options.to_dict(), "executor": NAME, "detach": False}
        ).to_dict()
        groups, shape = self.packs(jobs, root, options.engine)
        tracker.reporter.note(shape)
        # The submission is announced before sbatch, under a token SLURM keeps as the job's
        # comment: an invocation killed before it records the job ids lets the next one find
        # the array (and adopt or cancel it) instead of leaving it orphaned.
        token = f"{COMMENT_PREFIX}{uuid.uuid4().hex[:16]}"
        executor.update_parameters(additional_parameters={**self.extra, "comment": token})
        tasks = [
            SlurmTask([j.to_dict() for j in group], task_options, self.cpus_per_task, self.requeues)
            for group in groups
        ]
        for group in groups:
            for job in group:
                tracker.before_submit(job.run_id)
        before = set(folder.iterdir())
        ledger.add_intent(token, [[j.run_id for j in group] for group in groups])
        try:
            # submitit prints sbatch's complaint itself: keep it for our one line.
            with contextlib.redirect_stderr(io.StringIO()):
                submitted = executor.submit_array(tasks)
        except submitit.core.utils.FailedJobError as exc:
            # sbatch refused (no controller reachable, a bad partition or account): say what
            # it said, in one line; nothing was submitted, so nothing goes into the ledger,
            # and submitit's files for it go.
            for path in set(folder.iterdir()) - before:
                if path.is_file() and not path.is_symlink():
                    path.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
            ledger.drop_intent(token)
            said = " ".join(str(exc).split())
            raise SuiteError(f"executor slurm: sbatch refused the job array: {said}") from None
        entries = {
            str(s.job_id): [j.run_id for j in group]
            for s, group in zip(submitted, groups, strict=True)
        }
        ledger.add(NAME, entries, intent=token)
        for job_id, run_ids in entries.items():
            tracker.adopt(job_id, run_ids)
        return list(entries)


def _task_ids(array: str, count: int) -> list[str]:
    """The job ids of an array of ``count`` tasks as the ledger keeps them (one task: the
    job's own id, as submitit submits a single task without an array)."""
    return [array] if count == 1 else [f"{array}_{i}" for i in range(count)]


def _shape_line(packs: Sequence[Sequence[Job]], why: str) -> str:
    """``slurm: 12 runs in 2 array tasks of 6 runs (why)``."""
    if not packs:
        return f"slurm: no run to submit ({why})"
    runs = sum(len(p) for p in packs)
    sizes = sorted({len(p) for p in packs})
    each = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    tasks = f"{len(packs)} array task{'s' if len(packs) != 1 else ''}"
    per = f"{each} run{'s' if sizes[-1] != 1 else ''}"
    return f"slurm: {runs} run{'s' if runs != 1 else ''} in {tasks} of {per} ({why})"


def _slots_text(found: scheduler.Slots, executor: SlurmExecutor) -> str:
    """Why the partition holds ``found.count`` tasks at once, in a few words."""
    asks = {
        "CPUs": f"cpus_per_task = {executor.cpus_per_task}",
        "GPUs": f"gpus_per_job = {executor.gpus_per_job}",
        "memory": f"mem_gb = {executor.mem_gb:g}",
    }[found.limit]
    nodes = f"{found.nodes} node{'s' if found.nodes != 1 else ''}"
    text = (
        f"partition {found.partition} holds {found.count} task{'s' if found.count != 1 else ''}"
        f" at once ({nodes}, by {found.limit}: {asks})"
    )
    if not found.count:
        text += ": one task, for SLURM to say why it cannot start"
    return text


def _estimates(jobs: Sequence[Job], root: Path, engine: str) -> list[float] | None:
    """Each job's wall time from the finished records in ``root`` (None unless every job
    has one: a partial estimate would balance the tasks on guesses)."""
    from dstbench.suite.cost import seconds_alike

    runs = root / "runs"
    if not runs.is_dir():
        return None
    records = []
    for path in runs.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            record = read_json(path)
            if isinstance(record, dict):
                records.append(record)
    if not records:
        return None
    seconds = seconds_alike([job.spec.to_json() for job in jobs], records, engine)
    if any(s is None for s in seconds):
        return None
    return [float(s) for s in seconds if s is not None]


def auto_tasks(
    runs: int, slots: int | None, seconds: Sequence[float] | None, minutes: int
) -> tuple[int, str]:
    """How many array tasks ``runs`` runs get with automatic packing, and what raised the
    count above ``slots`` (empty when nothing did).

    As many tasks as run at once (``slots``; None: unknown, one task per run), never more
    than there are runs and at least one. With run times estimated (``seconds``, one per
    run), more tasks when a task's share would exceed half its time limit (``minutes``):
    the other half is the margin for the estimate, the start of the task and a requeue.
    """
    if runs <= 0:
        return 0, ""
    if slots is None:
        return runs, ""
    count = max(1, min(runs, slots))
    if not seconds:
        return count, ""
    budget = minutes * 60 / 2
    if max(seconds) > budget:
        # One run alone outlasts the budget: every run gets its own task.
        needed = runs
    else:
        needed = max(count, math.ceil(sum(seconds) / budget))
        while needed < runs and max(_loads(seconds, needed)) > budget:
            needed += 1
    if needed <= count:
        return count, ""
    return needed, (
        f"{needed} tasks keep each within half its {minutes}-min time limit (run times "
        "estimated from finished runs alike)"
    )


def _loads(seconds: Sequence[float], tasks: int) -> list[float]:
    """Each task's total seconds when the runs go longest first to the least loaded task."""
    loads = [0.0] * tasks
    for value in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += value
    return loads


def balanced_packs(
    jobs: Sequence[Job], tasks: int, seconds: Sequence[float] | None = None
) -> list[list[Job]]:
    """``jobs`` in ``tasks`` packs of balanced work; each pack keeps the suite's order.

    Without estimates, the runs of each cell (the same spec but for the seed) are dealt
    round-robin, cell after cell, so that every task gets its share of each density and
    criterion: dealing the suite's order itself would give all the runs of a criterion to
    one task whenever the suite alternates as many criteria as there are tasks. With
    estimates (one per job), longest first to the least loaded task, in the same order among
    equals.
    """
    tasks = max(1, min(tasks, len(jobs))) if jobs else 0
    if not tasks:
        return []
    cells: dict[str, int] = {}
    for job in jobs:
        cells.setdefault(_cell_key(job), len(cells))
    order = sorted(range(len(jobs)), key=lambda i: cells[_cell_key(jobs[i])])
    chosen: list[list[int]] = [[] for _ in range(tasks)]
    if seconds is None:
        for n, index in enumerate(order):
            chosen[n % tasks].append(index)
    else:
        loads = [0.0] * tasks
        for index in sorted(order, key=lambda i: -seconds[i]):
            least = loads.index(min(loads))
            loads[least] += seconds[index]
            chosen[least].append(index)
    return [[jobs[i] for i in sorted(indices)] for indices in chosen if indices]


def _cell_key(job: Job) -> str:
    """What a run has in common with the other seeds of its cell: its spec without the seed."""
    spec = job.spec.to_json()
    spec.pop("seed", None)
    return json.dumps(spec, sort_keys=True, default=str)


def _settle_intents(ledger: Ledger, root: Path, reporter: Reporter) -> None:
    """Find the jobs of submissions an earlier invocation announced but never recorded (it
    died between sbatch and the ledger): adopt those whose tasks can run, cancel the others
    (their tasks would find no work: submitit's files were never put in place); then remove
    submitit's files of abandoned submissions."""
    intents = ledger.intents()
    if intents:
        found = scheduler.jobs_by_comment()
        if found is None:
            return  # SLURM does not answer: settle them next time
        for token, packs in intents.items():
            for array in found.get(token, []):
                job_ids = _task_ids(array, len(packs))
                folder = root / "slurm"
                ready = all((folder / j / f"{j}_submitted.pkl").is_file() for j in job_ids)
                if ready:
                    ledger.add(NAME, dict(zip(job_ids, packs, strict=True)), intent=token)
                    reporter.note(
                        f"slurm: adopted job {array}, submitted by an invocation that stopped "
                        "before recording it"
                    )
                else:
                    scheduler.scancel([array])
                    reporter.note(
                        f"slurm: cancelled job {array}, submitted by an invocation that "
                        "stopped before its tasks could find their work; its runs go again"
                    )
            ledger.drop_intent(token)
    # Under the store's lock no other invocation submits here: what submitit left at the top
    # of the folder (pickles and scripts of submissions never made or never recorded) is stray.
    folder = root / "slurm"
    if folder.is_dir():
        for path in [*folder.glob("*.pkl"), *folder.glob(".submission_file_*.sh")]:
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)


@dataclass
class _Task:
    job_id: str
    run_ids: list[str]
    #: Runs of the task whose record has appeared.
    done: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    ended: bool = False
    #: Consecutive looks at which the scheduler did not know the job.
    unknown: int = 0
    #: The pending reason last reported.
    reason: str = ""


class _Tracker:
    """Follows submitted tasks: records appearing, and jobs that end without them."""

    def __init__(self, root: Path, reporter: Reporter, patience: float = 900.0) -> None:
        self.root = root
        self.reporter = reporter
        self.patience = patience
        #: The task's time limit in minutes, for the message of a task that reached it.
        self.time_limit: int | None = None
        #: When the scheduler stopped answering (monotonic seconds); None while it answers.
        self.silent_since: float | None = None
        self.tasks: dict[str, _Task] = {}
        #: run id -> its record's mtime when submitted (None: no record), to tell a new
        #: record from the failed one being retried.
        self.baseline: dict[str, int | None] = {}

    def record_path(self, run_id: str) -> Path:
        return self.root / "runs" / f"{run_id}.json"

    def _mtime(self, run_id: str) -> int | None:
        try:
            return self.record_path(run_id).stat().st_mtime_ns
        except OSError:
            return None

    def before_submit(self, run_id: str) -> None:
        self.baseline[run_id] = self._mtime(run_id)

    def adopt(self, job_id: str, run_ids: list[str]) -> None:
        for run_id in run_ids:
            self.baseline.setdefault(run_id, self._mtime(run_id))
        self.tasks[job_id] = _Task(job_id, run_ids)

    def new_record(self, run_id: str) -> bool:
        mtime = self._mtime(run_id)
        return mtime is not None and mtime != self.baseline.get(run_id)

    def follow(self, poll: float) -> None:
        while any(not t.ended for t in self.tasks.values()):
            self.look()
            if any(not t.ended for t in self.tasks.values()):
                time.sleep(poll)

    def look(self) -> None:
        """One round: the scheduler's states, new records, ended jobs."""
        open_tasks = [t for t in self.tasks.values() if not t.ended]
        asked = time.monotonic()
        states = scheduler.job_states(t.job_id for t in open_tasks)
        self.check_answering([states[t.job_id] for t in open_tasks], asked)
        self.check_pending(open_tasks, states)
        for task in open_tasks:
            state = states[task.job_id]
            self.collect(task)
            if state.unknown:
                continue  # no answer: the job may be running; never take it as ended
            if state.phase == "running":
                waiting = [r for r in task.run_ids if r not in task.done]
                if waiting and waiting[0] not in task.started:
                    task.started.add(waiting[0])
                    self.reporter.started(waiting[0], f"slurm {task.job_id}")
            if state.state == "UNKNOWN":
                task.unknown += 1
            if state.phase == "ended" and (state.state != "UNKNOWN" or task.unknown > 1):
                self.collect(task)  # records written just before the job ended
                self.end(task, state)

    def check_answering(self, states: Sequence[JobState], asked: float) -> None:
        """Say when the scheduler stops and starts answering; stop after ``patience``
        (counted from ``asked``, when the first unanswered query was sent).

        :raises SuiteError: when it has not answered for ``patience`` seconds (the jobs are
            left as they are: the next invocation follows them).
        """
        silent = next((s for s in states if s.unknown), None)
        now = time.monotonic()
        if silent is None:
            if self.silent_since is not None:
                waited = now - self.silent_since
                self.reporter.note(f"slurm: SLURM answers again after {waited:.0f} s")
            self.silent_since = None
            return
        if self.silent_since is None:
            self.silent_since = asked
            self.reporter.note(
                f"slurm: SLURM does not answer ({silent.reason.removeprefix('cannot ask SLURM: ')}"
                f"); its jobs may still run: waiting up to {self.patience:.0f} s "
                "(slurm[patience=SECONDS])"
            )
        if now - self.silent_since >= self.patience:
            msg = (
                f"executor slurm: SLURM has not answered for {now - self.silent_since:.0f} s "
                f"({silent.reason}); its jobs were left as they are and no run was recorded as "
                "failed: run the same command again to follow them"
            )
            raise SuiteError(msg)

    def check_pending(self, tasks: Sequence[_Task], states: Mapping[str, JobState]) -> None:
        """Say why tasks wait, once per reason; stop when the reason never clears.

        :raises SuiteError: when a task waits for what it can never get (the tasks waiting
            for it are cancelled, so that they hold nothing).
        """
        changed: dict[str, list[str]] = {}
        stuck: dict[str, list[str]] = {}
        for task in tasks:
            state = states[task.job_id]
            reason = state.reason if state.phase == "pending" else ""
            if reason and scheduler.never_clears(reason):
                stuck.setdefault(reason, []).append(task.job_id)
            elif reason and reason != task.reason:
                changed.setdefault(reason, []).append(task.job_id)
            task.reason = reason
        if stuck:
            reason, job_ids = next(iter(stuck.items()))
            every = [j for ids in stuck.values() for j in ids]
            scheduler.scancel(every)
            msg = (
                f"executor slurm: job {job_ids[0]} can never start: SLURM keeps it pending "
                f"({reason}{scheduler.reason_hint(reason)}); cancelled {len(every)} "
                f"task{'s' if len(every) != 1 else ''}, no run was recorded"
            )
            raise SuiteError(msg)
        for reason, job_ids in changed.items():
            count = len(job_ids)
            which = job_ids[0] if count == 1 else f"{count} tasks ({job_ids[0]}, ...)"
            self.reporter.note(f"slurm: {which} pending: {reason}{scheduler.reason_hint(reason)}")

    def collect(self, task: _Task) -> None:
        for run_id in task.run_ids:
            if run_id not in task.done and self.new_record(run_id):
                task.done.add(run_id)
                if run_id not in task.started:  # it ran between two looks
                    task.started.add(run_id)
                    self.reporter.started(run_id, f"slurm {task.job_id}")
                self.reporter.finished(run_id)
        if len(task.done) == len(task.run_ids):
            # Every run of the task has its record: the task has nothing left to do, so the
            # suite need not wait for SLURM to say it ended (its process is exiting).
            task.ended = True

    def end(self, task: _Task, state: JobState) -> None:
        task.ended = True
        missing = [r for r in task.run_ids if r not in task.done]
        if not missing:
            return
        why = state.state + (f" ({state.reason})" if state.reason else "")
        folder = self.root / "slurm" / task.job_id
        log = log_tail(folder)
        for run_id in missing:
            if state.state.startswith("TIMEOUT"):
                message = self.timeout_message(task.job_id, run_id, folder)
            else:
                message = f"SLURM job {task.job_id} ended {why} without writing this run's record"
            self.reporter.finished(run_id, message, log)

    def timeout_message(self, job_id: str, run_id: str, folder: Path) -> str:
        """What a run whose task reached its time limit on its last attempt says: the limit,
        the attempts, how far its checkpoint got."""
        text = "\n".join(_log_texts(folder))
        attempts = max(1, len(re.findall(r"^dstbench: attempt \d+", text, re.MULTILINE)))
        limit = f" of {self.time_limit} min" if self.time_limit else ""
        where = re.findall(
            rf"^dstbench: {re.escape(run_id)} checkpointed at epoch (\d+) of (\d+)", text, re.M
        )
        progress = (
            f"; its checkpoint reached epoch {where[-1][0]} of {where[-1][1]}, where a re-run "
            "resumes"
            if where
            else "; no checkpoint"
        )
        return (
            f"SLURM job {job_id} ended TIMEOUT: the time limit{limit} was reached on each of "
            f"{attempts} attempt{'s' if attempts != 1 else ''}{progress} (raise the executor's "
            "time or requeues)"
        )


def _log_texts(folder: Path) -> list[str]:
    """The text of each of a task's logs."""
    texts = []
    for path in sorted(folder.glob("*_log.*")):
        with contextlib.suppress(OSError):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


def log_tail(folder: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a task's logs (empty when there are none)."""
    return "\n".join("\n".join(t.splitlines()[-lines:]) for t in _log_texts(folder))


def signal_delay(minutes: int) -> int:
    """Seconds before a task's time limit at which SLURM warns it (SIGUSR2): 90, or a
    quarter of a short limit (at least 10 s)."""
    return max(10, min(90, minutes * 60 // 4))


class SlurmTask:
    """What one array task executes (submitit pickles it): its runs, group after group of
    the engine (one run at a time with the ``single`` engine).

    Runs that already have a final record are skipped, so a requeued task picks up where it
    stopped, and the runs it was in resume from their checkpoints.
    """

    def __init__(
        self, jobs: list[dict[str, Any]], options: dict[str, Any], threads: int, requeues: int = 3
    ) -> None:
        self.jobs = jobs
        self.options = options
        self.threads = threads
        #: Requeues for the time limit allowed, and used so far.
        self.requeues = requeues
        self.timeouts = 0

    @property
    def last_attempt(self) -> bool:
        """No requeue is left: this attempt trains until the time limit itself."""
        return self.timeouts >= self.requeues

    def __call__(self) -> dict[str, str]:
        """Train the task's runs; exit with status 75 when a signal interrupted them."""
        import submitit

        from dstbench.engine.interrupt import stop_requested, stop_signal
        from dstbench.plugins import get_plugins
        from dstbench.suite.worker import configure_threads, run_group

        configure_threads(self.threads)
        get_plugins()
        environment = submitit.JobEnvironment()
        where = f"slurm {environment.job_id}@{environment.hostname}"
        options = ExecutionOptions.from_dict(self.options)
        statuses: dict[str, str] = {}
        signals = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
        left = self.requeues - self.timeouts
        print(
            f"dstbench: attempt {self.timeouts + 1} of task {environment.job_id} "
            f"({left} requeue{'s' if left != 1 else ''} for the time limit left)",
            flush=True,
        )
        with stop_on_signals(signals) as replaced:
            if self.last_attempt:
                # No requeue left: SLURM's early warning must not end the last attempt
                # early; the limit itself (SIGTERM) still checkpoints the run.
                signal.signal(signal.SIGUSR2, _train_on)
            todo: list[Job] = []
            for data in self.jobs:
                job = Job.from_dict(data)
                if _final_status(job.record_path) in _FINISHED:
                    statuses[job.run_id] = "skipped"
                else:
                    todo.append(job)
            for group in _groups(todo, options):
                if stop_requested():
                    break
                for job in group:
                    _say_checkpoint(job, "resumes from its checkpoint at")
                done = run_group(group, options, worker=where)
                statuses.update(zip((job.run_id for job in group), done, strict=True))
                stopped = [j for j, s in zip(group, done, strict=True) if s == INTERRUPTED]
                for job in stopped:
                    _say_checkpoint(job)
                if stopped:
                    break
        if stop_requested():
            handler = replaced.get(signal.SIGUSR2)
            if stop_signal() == signal.SIGUSR2 and callable(handler):
                # submitit's protocol: checkpoint() below, then `scontrol requeue`.
                handler(signal.SIGUSR2, None)
            sys.stdout.flush()
            os._exit(INTERRUPTED_EXIT)  # SLURM requeues or cancels; no result to pickle
        return statuses

    def checkpoint(self) -> Any:
        """submitit's checkpoint hook (on SLURM's time-limit warning): the same task again,
        one requeue used (its runs' state is on disk)."""
        import submitit

        self.timeouts += 1
        return submitit.helpers.DelayedSubmission(self)


def _groups(jobs: Sequence[Job], options: ExecutionOptions) -> list[list[Job]]:
    """A task's runs as its engine trains them: one group per run (``single``), or groups of
    compatible runs trained together (``batched``: ``options.group`` runs at most, 0: one
    group of all that are compatible, the task being a single worker)."""
    from dstbench.plugins import get_plugins
    from dstbench.suite.worker import make_engine

    try:
        engine = make_engine(options.engine, get_plugins().registry)
    except DstbenchError:
        return [[job] for job in jobs]  # run_group records the same error for each run
    return engine.groups(jobs, options.group, 1)


def _train_on(signum: int, frame: Any) -> None:
    print(
        "dstbench: the time limit is near and no requeue is left: training on until it",
        flush=True,
    )


def _say_checkpoint(job: Job, what: str = "checkpointed at") -> None:
    """Put in the task's log how far the run's checkpoint got (``what``: the checkpoint was
    just written, or the run resumes from it)."""
    from dstbench.engine.checkpoint import read
    from dstbench.suite.worker import checkpoint_path

    data, _ = read(checkpoint_path(job), job.run_id)
    if data is not None:
        epochs = job.spec["epochs"]
        print(
            f"dstbench: {job.run_id} {what} epoch {data['epoch']} of {epochs}",
            flush=True,
        )


def _final_status(path: str) -> str | None:
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return record.get("status") if isinstance(record, Mapping) else None
