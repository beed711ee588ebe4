"""The executor protocol: how a suite's runs are dispatched.

A suite turns into a list of :class:`Job` objects (runs that are not done yet). An *executor*
runs them: the built-in ``local`` one in parallel worker processes on this machine; a plugin
can add others (a SLURM array, a Kubernetes job queue, ...) through the
``dstbench_register_executors`` hook::

    from dstbench import hookimpl

    class SlurmExecutor:
        def __init__(self, partition: str = "gpu", max_jobs: int = 100) -> None: ...

        def run(self, jobs, options, reporter):
            # write each job to a file, submit `python -m dstbench.suite.worker JOB.json`
            # per job (or pack several per submission), poll, and report back
            ...

    @hookimpl
    def dstbench_register_executors(register):
        register("slurm", SlurmExecutor, description="one SLURM job per run")

The factory is called with the executor's parameters (keyword defaults of its signature),
settable from a suite (``executor = {name = "slurm", partition = "a100"}``) or the command
line (``--executor slurm[partition=a100]``).

The contract, which keeps resume and failure isolation the same whatever the executor:

* Every job is executed by :func:`dstbench.suite.worker.run_job` (or the module's command
  line, ``python -m dstbench.suite.worker JOB.json``) in a process that loads the same
  plugins (the ``DSTBENCH_*`` environment variables must reach it). ``run_job`` writes the
  run's record atomically to ``job.record_path``; the executor never writes records.
* The executor reports through the :class:`Reporter`: ``started`` when a job starts,
  ``progress`` after each epoch if it can, and ``finished`` exactly once per job, with an
  ``error`` message when the job's process died without writing its record (the suite then
  records the run as failed with that message).
* A job whose worker was asked to stop (SIGTERM or SIGUSR1: preemption, a time limit,
  Ctrl-C) checkpoints and exits with :data:`~dstbench.engine.interrupt.INTERRUPTED_EXIT`
  (``run_job`` returns ``"interrupted"``); the executor reports it with ``interrupted``, not
  as a failure, and the next attempt resumes it from its checkpoint.
* ``run`` returns once every job has finished, or, with ``options.detach``, once every job is
  submitted (executors that queue jobs elsewhere: :meth:`Reporter.queued` says where). On
  ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one by the suite) it stops what it
  started, then re-raises; runs that did not finish are simply not recorded, and the next
  invocation of the suite runs them (from their checkpoints).

Executors that submit to a scheduler keep a :class:`~dstbench.suite.ledger.Ledger` (run ->
job id) in ``options.output`` and may offer ``job_states(job_ids) -> {job_id: JobState}``,
which ``dstbench status`` uses to tell pending and running runs apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from dstbench.errors import DstbenchError, SuiteError
from dstbench.registry import Registry


@dataclass(frozen=True)
class Job:
    """One run to execute: its id, normalized spec and where its record goes."""

    run_id: str
    spec: dict[str, Any]
    #: Absolute path of the JSON record to write.
    record_path: str
    #: A short human label (``magnitude/gradient mlp/digits d=0.1 seed=0``).
    label: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a cluster executor ships to the machine that runs it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`."""
        return cls(
            run_id=str(data["run_id"]),
            spec=dict(data["spec"]),
            record_path=str(data["record_path"]),
            label=str(data.get("label", data["run_id"])),
        )


@dataclass(frozen=True)
class ExecutionOptions:
    """How to execute runs, whatever the executor."""

    #: Parallel workers (jobs running at once).
    workers: int
    #: ``auto``, ``cpu``, ``cuda`` (GPUs shared round-robin) or ``cuda:N``.
    device: str = "auto"
    #: Data directory (None: ``$DSTBENCH_DATA`` or the user cache).
    data_root: str | None = None
    #: Whether datasets may download missing files.
    download: bool = False
    #: Runs' artifact directories go under this one (``<artifact_root>/<run_id>``), or None.
    artifact_root: str | None = None
    #: Name of the executor (recorded with every run, with ``workers``).
    executor: str = "local"
    #: Seconds a run may take; the executor stops a run past it and reports it as failed
    #: with ``timed out after ...`` (None: no limit).
    timeout: float | None = None
    #: The suite's results directory (where a scheduler executor keeps its ledger and logs).
    output: str | None = None
    #: Submit and return without waiting (executors that queue jobs on a scheduler).
    detach: bool = False
    #: Default in-run checkpoint period in epochs for runs whose spec leaves it unset: 0 never,
    #: None the engine's default (checkpoint long runs only).
    checkpoint_every: int | None = None
    #: The training engine: ``single`` (one run at a time) or ``batched`` (compatible runs
    #: trained together, see :mod:`dstbench.batched`).
    engine: str = "single"
    #: Runs per batched group (0: automatic, see :func:`dstbench.batched.grouping.auto_group`).
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


@runtime_checkable
class Reporter(Protocol):
    """What an executor tells the suite while it works (called from the executor's thread)."""

    def started(self, run_id: str, where: str) -> None:
        """Job ``run_id`` started on ``where`` (a worker name, host, or cluster job id)."""

    def progress(self, run_id: str, epoch: int, epochs: int) -> None:
        """Job ``run_id`` finished epoch ``epoch`` of ``epochs``."""

    def finished(self, run_id: str, error: str | None = None, log: str | None = None) -> None:
        """Job ``run_id`` is over; ``error`` says why when its process died without a record
        (``log``: the tail of its log, kept in the failure record)."""

    def queued(self, run_id: str, where: str) -> None:
        """Job ``run_id`` waits in a scheduler's queue as ``where`` (e.g. ``slurm 1234_5``)."""

    def interrupted(self, run_id: str, why: str) -> None:
        """Job ``run_id`` stopped early and checkpointed; it resumes on its next attempt."""


@dataclass(frozen=True)
class JobState:
    """What a scheduler says about one job: ``pending``, ``running`` or ``ended``."""

    phase: str
    #: The scheduler's own word (``PENDING``, ``TIMEOUT``, ``CANCELLED by 0``, ...).
    state: str = ""
    #: Why, when the scheduler says (``Resources``, ``BeginTime``, an exit code, ...).
    reason: str = ""

    @property
    def alive(self) -> bool:
        """Pending or running: the job may still write its records."""
        return self.phase in ("pending", "running")


@runtime_checkable
class Executor(Protocol):
    """Runs jobs and reports on them. Created by the registered factory with its params."""

    def run(self, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter) -> None:
        """Run every job (see the module docstring for the contract)."""


def make_executor(component: Mapping[str, Any], registry: Registry) -> Executor:
    """Build the executor ``{"name": ..., "params": {...}}`` from its registered factory.

    :raises SuiteError: when the name is unknown, a parameter is wrong, or the factory
        returns something without a ``run`` method.
    """
    name = str(component["name"])
    try:
        info = registry.executors[name]
        params = info.resolve_params(component.get("params") or {})
    except DstbenchError as exc:
        raise SuiteError(f"executor: {exc}") from None
    executor = info.fn(**params)
    if not callable(getattr(executor, "run", None)):
        msg = (
            f"executor {name!r} (plugin {info.plugin!r}) returned {type(executor).__name__}, "
            "which has no run(jobs, options, reporter) method"
        )
        raise SuiteError(msg)
    return executor


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
