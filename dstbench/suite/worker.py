"""What runs one job, wherever it runs: train, then write the record atomically.

Executors call :func:`run_job` in a process that has the suite's plugins. It never raises for
a failing run: whatever happens, a record is written (``failed`` with the traceback when the
run raised), unless the process itself is killed, in which case nothing is written and the
run stays "to run".

Cluster executors can run a job from a shell: ``python -m dstbench.suite.worker JOB.json``
where the file holds ``{"job": Job.to_dict(), "options": ExecutionOptions.to_dict()}``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from dstbench.contracts.execution import (
    Engine,
    EpochProgress,
    ExecutionOptions,
    Job,
    RunRequest,
)
from dstbench.contracts.record import RunRecord, content_digest
from dstbench.contracts.spec import RunSpec
from dstbench.engine.checkpoint import remove as remove_checkpoint
from dstbench.engine.checkpoint import remove_temporaries as remove_checkpoint_temporaries
from dstbench.engine.interrupt import (
    INTERRUPTED,
    INTERRUPTED_EXIT,
    RunInterrupted,
    stop_on_signals,
)
from dstbench.engine.process import reset_process_state, set_run_threads
from dstbench.engine.record import failed_record
from dstbench.errors import DstbenchError
from dstbench.io import OutputError, read_json
from dstbench.plugins import get_plugins
from dstbench.registry import Registry
from dstbench.resolve import lookup
from dstbench.suite.store import record_problem, write_record


def configure_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch in this process (and its subprocesses)."""
    import torch

    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
    set_run_threads(threads)


def failure_record(
    spec: Mapping[str, Any], run_id: str, message: str, trace: str | None = None
) -> dict[str, Any]:
    """The JSON form of a ``failed`` record for a run that produced none of its own."""
    built = spec if isinstance(spec, RunSpec) else RunSpec.from_json(spec)
    record = failed_record(built, message, trace).to_json()
    record["run_id"] = run_id  # the id the driver knows the run by
    return record


def make_engine(name: str, registry: Registry) -> Engine:
    """The registered engine ``name``, built by its factory.

    :raises SpecError: when no engine of that name is registered (key ``engine``).
    """
    info = lookup("engine", name, registry, key="engine")
    engine = info.fn()
    if not callable(getattr(engine, "run", None)) or not callable(getattr(engine, "groups", None)):
        msg = (
            f"engine {name!r} (plugin {info.plugin!r}) returned {type(engine).__name__}, which "
            "lacks run(requests, options, plugins) or groups(jobs, size, workers)"
        )
        raise DstbenchError(msg)
    return cast(Engine, engine)


def checkpoint_path(job: Job) -> Path:
    """Where ``job`` keeps its in-run checkpoint: ``<results>/checkpoints/<run_id>.pt``."""
    return Path(job.record_path).parent.parent / "checkpoints" / f"{job.run_id}.pt"


def run_job(
    job: Job,
    options: ExecutionOptions,
    *,
    device: str | None = None,
    worker: str = "",
    progress: EpochProgress | None = None,
) -> str:
    """Execute ``job`` and write its record to ``job.record_path``; return the status
    (``"interrupted"`` when a signal stopped it: then it leaves a checkpoint, not a record).

    :param device: the device for this job (default: ``options.device``); executors that
        spread runs over GPUs pass each worker's own.
    :param worker: a name for where it ran, recorded with the run.
    :param progress: called after every epoch with ``(epoch, epochs)``.
    :raises OutputError: when the record cannot be written (no space left, read-only).
    """
    callback = (lambda run_id, epoch, epochs: progress(epoch, epochs)) if progress else None
    return run_group([job], options, device=device, worker=worker, progress=callback)[0]


def run_group(
    jobs: Sequence[Job],
    options: ExecutionOptions,
    *,
    device: str | None = None,
    worker: str = "",
    progress: Callable[[str, int, int], None] | None = None,
    finished: Callable[[str], None] | None = None,
) -> list[str]:
    """Execute ``jobs`` (one group of ``options.engine``), write each record as soon as it is
    complete; return the statuses, in order.

    Like :func:`run_job`, never raises for a failing run: each run's record is written
    (``failed`` for those the engine could not train).

    :param progress: called after every epoch of every run with ``(run_id, epoch, epochs)``.
    :param finished: called with each run id once its record is written.
    :raises OutputError: when a record cannot be written (no space left, read-only).
    """
    if not jobs:
        return []
    done = {job.run_id: status for job in jobs if (status := finished_status(job)) is not None}
    for run_id in done:
        if finished:
            finished(run_id)
    if done:
        rest = run_group(
            [job for job in jobs if job.run_id not in done],
            options,
            device=device,
            worker=worker,
            progress=progress,
            finished=finished,
        )
        trained = iter(rest)
        return [done[job.run_id] if job.run_id in done else next(trained) for job in jobs]
    dirs = [_artifact_dir(options, job) for job in jobs]
    requests = [
        RunRequest(
            spec=job.spec,
            device=device or options.device,
            artifact_dir=directory,
            progress=functools.partial(progress, job.run_id) if progress else None,
            checkpoint=checkpoint_path(job) if options.checkpoint_every != 0 else None,
        )
        for job, directory in zip(jobs, dirs, strict=True)
    ]
    statuses: list[str] = []
    try:
        with stop_on_signals():
            plugins = get_plugins()
            engine = make_engine(options.engine, plugins.registry)
            leaked = reset_process_state()  # what earlier runs of this process left changed
            for record in engine.run(requests, options, plugins):
                job = jobs[len(statuses)]
                directory = dirs[len(statuses)]
                record = _checked(job, record)
                statuses.append(_finish(job, options, record, worker, directory, leaked))
                if finished:
                    finished(job.run_id)
    except RunInterrupted:
        return statuses + [INTERRUPTED] * (len(jobs) - len(statuses))
    except Exception as exc:  # e.g. a SpecError when a worker lacks a plugin
        trace = traceback.format_exc()
        for job, directory in zip(jobs[len(statuses) :], dirs[len(statuses) :], strict=True):
            record = failed_record(job.spec, f"{type(exc).__name__}: {exc}", trace)
            statuses.append(_finish(job, options, record, worker, directory))
            if finished:
                finished(job.run_id)
    return statuses


def finished_status(job: Job) -> str | None:
    """The status of a trusted record of ``job``'s run that ``job`` must not replace, or None.

    A run whose trusted record is not the one the job was planned over (``job.replaces``)
    finished elsewhere: a copy of its task that a cluster ran again after a worker died, or
    another invocation. Its record stands; the job neither trains it again nor rewrites it.
    """
    try:
        record = read_json(job.record_path)
    except (OSError, ValueError):
        return None
    if record_problem(record, job.run_id) is not None:
        return None
    if content_digest(record) == job.replaces:
        return None
    return str(record["status"])


def _artifact_dir(options: ExecutionOptions, job: Job) -> Path | None:
    """The run's artifact directory, created for observers (None without an artifact root).

    What a killed attempt of the run left is removed first: its checkpoint's temporary files,
    and its artifact folder unless the run resumes from its checkpoint (then the folder is
    the run's, up to that point).
    """
    checkpoint = checkpoint_path(job)
    remove_checkpoint_temporaries(checkpoint)
    if not options.artifact_root:
        return None
    directory = Path(options.artifact_root) / job.run_id
    if directory.is_symlink():  # planted: observers would write wherever it points
        directory.unlink()
    elif directory.is_dir() and not checkpoint.exists():
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _finish(
    job: Job,
    options: ExecutionOptions,
    record: RunRecord,
    worker: str,
    directory: Path | None,
    reset: Sequence[str] = (),
) -> str:
    """Tidy the run's artifact folder and write its record (unless the run finished elsewhere
    meanwhile: then that record stands); return its status."""
    elsewhere = finished_status(job)
    if elsewhere is not None:
        return elsewhere
    if directory is not None:
        # Keep it only if an observer wrote into it. The shared parent stays: another worker
        # may be creating its own run's folder in it right now (the driver removes it).
        with contextlib.suppress(OSError):
            directory.rmdir()
    _write(job, options, record, worker, reset)
    remove_checkpoint(checkpoint_path(job))  # the record holds what it was for
    return record.status


def _checked(job: Job, record: RunRecord) -> RunRecord:
    """``record``, or a failure record when this process gave the spec another run id."""
    if record.run_id == job.run_id:
        return record
    # This process normalized the spec differently: other plugins or versions.
    return failed_record(
        job.spec,
        f"the worker's plugins turn this spec into run {record.run_id!r}, not "
        f"{job.run_id!r}; do the driver and the workers load the same plugins?",
    )


def _write(
    job: Job, options: ExecutionOptions, record: RunRecord, worker: str, reset: Sequence[str] = ()
) -> None:
    import torch

    execution: dict[str, Any] = {
        "executor": options.executor,
        "workers": options.workers,
        "worker": worker,
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "engine": options.engine,
    }
    if reset:  # settings an earlier run of the worker had changed, put back before this one
        execution["process_state_reset"] = list(reset)
    record = record.with_execution(execution)
    # OutputError (e.g. disk full) to the caller
    write_record(job.record_path, record.to_json())


def main(argv: list[str] | None = None) -> int:
    """``python -m dstbench.suite.worker JOB.json``: run one job from a file (for clusters).

    The file holds ``{"job": ..., "options": ...}``, or ``{"jobs": [...], "options": ...}``
    for a group of jobs that ``options.engine`` trains together.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m dstbench.suite.worker JOB.json\n")
        return 2
    with open(args[0], encoding="utf-8") as handle:
        payload = json.load(handle)
    return run_payload(payload)


def run_payload(payload: Mapping[str, Any]) -> int:
    """Run the job (or group of jobs) of a cluster payload; return the exit status a worker
    process reports it with: 0 (ok), 1 (a run that did not succeed: its record says why),
    2 (a record could not be written) or :data:`INTERRUPTED_EXIT` (a signal stopped it).

    ``payload`` is what :func:`main` reads from its file: ``{"job": ...}`` or ``{"jobs":
    [...]}``, with ``"options"`` and an optional ``"worker"`` name.
    """
    options = ExecutionOptions.from_dict(payload["options"])
    where = payload.get("worker", platform.node())
    try:
        if "jobs" in payload:
            jobs = [Job.from_dict(job) for job in payload["jobs"]]
            statuses = run_group(jobs, options, worker=where)
            if INTERRUPTED in statuses:
                return INTERRUPTED_EXIT
            return 0 if all(status == "ok" for status in statuses) else 1
        status = run_job(Job.from_dict(payload["job"]), options, worker=where)
        if status == INTERRUPTED:
            return INTERRUPTED_EXIT
    except OutputError as exc:
        sys.stderr.write(f"dstbench worker: cannot write the record: {exc}\n")
        return 2
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
