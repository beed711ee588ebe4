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
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dstbench.engine.interrupt import (
    INTERRUPTED,
    INTERRUPTED_EXIT,
    RunInterrupted,
    stop_on_signals,
)
from dstbench.io import OutputError, write_json_atomic
from dstbench.suite.executors import ExecutionOptions, Job

#: ``progress(epoch, epochs)``, called after every epoch.
EpochProgress = Callable[[int, int], None]


def configure_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch in this process (and its subprocesses)."""
    import torch

    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)


def failure_record(
    spec: Mapping[str, Any], run_id: str, message: str, trace: str | None = None
) -> dict[str, Any]:
    """A ``failed`` record for a run that produced none of its own."""
    from dstbench.engine.train import new_record

    record = new_record(dict(spec), run_id)
    record["error"] = {
        "type": "RunnerError",
        "message": message,
        "user_error": False,
        "traceback": trace or "",
    }
    return record


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
    from dstbench.engine.train import execute

    artifact_dir = _artifact_dir(options, job)
    callback = None
    if progress is not None:

        def callback(info: dict[str, Any]) -> None:
            progress(int(info["epoch"]), int(info["epochs"]))

    try:
        with stop_on_signals():
            record = execute(
                job.spec,
                device=device or options.device,
                data_root=options.data_root,
                download=options.download,
                artifact_dir=artifact_dir,
                progress=callback,
            )
        record = _checked(job, record)
    except RunInterrupted:
        return INTERRUPTED
    except Exception as exc:  # e.g. a SpecError when a worker lacks a plugin
        record = failure_record(
            job.spec, job.run_id, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        )
    _finish_artifacts(artifact_dir)
    _write(job, options, record, worker)
    return str(record["status"])


def _artifact_dir(options: ExecutionOptions, job: Job) -> Path | None:
    """The run's artifact directory, created for observers (None without an artifact root)."""
    if not options.artifact_root:
        return None
    directory = Path(options.artifact_root) / job.run_id
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _finish_artifacts(directory: Path | None) -> None:
    if directory is not None:
        # Keep it only if an observer wrote into it. The shared parent stays: another worker
        # may be creating its own run's folder in it right now (the driver removes it).
        with contextlib.suppress(OSError):
            directory.rmdir()


def _checked(job: Job, record: dict[str, Any]) -> dict[str, Any]:
    """``record``, or a failure record when this process gave the spec another run id."""
    if record.get("run_id") == job.run_id:
        return record
    # This process normalized the spec differently: other plugins or versions.
    return failure_record(
        job.spec,
        job.run_id,
        f"the worker's plugins turn this spec into run {record.get('run_id')!r}, not "
        f"{job.run_id!r}; do the driver and the workers load the same plugins?",
    )


def _write(job: Job, options: ExecutionOptions, record: dict[str, Any], worker: str) -> None:
    import torch

    record["execution"] = {
        "executor": options.executor,
        "workers": options.workers,
        "worker": worker,
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "engine": "batched" if "group_size" in record.get("timings", {}) else "single",
    }
    write_json_atomic(job.record_path, record)  # OutputError (e.g. disk full) to the caller


def run_group(
    jobs: Sequence[Job],
    options: ExecutionOptions,
    *,
    device: str | None = None,
    worker: str = "",
    progress: Callable[[str, int, int], None] | None = None,
    finished: Callable[[str], None] | None = None,
) -> list[str]:
    """Execute ``jobs`` together with the batched engine, write each record; return statuses.

    Like :func:`run_job`, never raises for a failing run: each run's record is written
    (``failed`` for all of them when the group itself could not train).

    :param progress: called after every epoch of every run with ``(run_id, epoch, epochs)``.
    :param finished: called with each run id once its record is written.
    """
    if len(jobs) == 1 and options.engine != "batched":
        status = run_job(
            jobs[0],
            options,
            device=device,
            worker=worker,
            progress=(lambda e, n: progress(jobs[0].run_id, e, n)) if progress else None,
        )
        if finished:
            finished(jobs[0].run_id)
        return [status]
    from dstbench.batched.engine import execute_group

    dirs = [_artifact_dir(options, job) for job in jobs]
    callback = None
    if progress is not None:

        def callback(index: int, info: dict[str, Any]) -> None:
            progress(jobs[index].run_id, int(info["epoch"]), int(info["epochs"]))

    try:
        records = execute_group(
            [job.spec for job in jobs],
            device=device or options.device,
            data_root=options.data_root,
            download=options.download,
            artifact_dirs=dirs,
            progress=callback,
        )
    except Exception as exc:  # e.g. a SpecError when a worker lacks a plugin
        trace = traceback.format_exc()
        message = f"{type(exc).__name__}: {exc}"
        records = [failure_record(job.spec, job.run_id, message, trace) for job in jobs]
    statuses = []
    for job, record, directory in zip(jobs, records, dirs, strict=True):
        record = _checked(job, record)
        _finish_artifacts(directory)
        _write(job, options, record, worker)
        statuses.append(str(record["status"]))
        if finished:
            finished(job.run_id)
    return statuses


def main(argv: list[str] | None = None) -> int:
    """``python -m dstbench.suite.worker JOB.json``: run one job from a file (for clusters).

    The file holds ``{"job": ..., "options": ...}``, or ``{"jobs": [...], "options": ...}``
    for a group of compatible jobs trained together by the batched engine.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m dstbench.suite.worker JOB.json\n")
        return 2
    with open(args[0], encoding="utf-8") as handle:
        payload = json.load(handle)
    options = ExecutionOptions.from_dict(payload["options"])
    where = payload.get("worker", platform.node())
    try:
        if "jobs" in payload:
            jobs = [Job.from_dict(job) for job in payload["jobs"]]
            statuses = run_group(jobs, options, worker=where)
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
