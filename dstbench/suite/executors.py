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
from collections.abc import Mapping
from typing import Any

from dstbench.contracts.execution import (
    ExecutionOptions,
    Executor,
    Job,
    JobState,
    Reporter,
)
from dstbench.errors import DstbenchError, SuiteError
from dstbench.registry import Registry


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


__all__ = [
    "ExecutionOptions",
    "Executor",
    "Job",
    "JobState",
    "Reporter",
    "available_cpus",
    "make_executor",
]
