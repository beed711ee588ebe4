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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dstbench.engine.interrupt import (
    INTERRUPTED,
    INTERRUPTED_EXIT,
    RunInterrupted,
    stop_on_signals,
)
from dstbench.io import write_json_atomic
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
    """
    from dstbench.engine.train import execute

    artifact_dir = Path(options.artifact_root) / job.run_id if options.artifact_root else None
    if artifact_dir is not None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
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
                **checkpoint_options(job, options),
            )
        if record.get("run_id") != job.run_id:
            # This process normalized the spec differently: other plugins or versions.
            record = failure_record(
                job.spec,
                job.run_id,
                f"the worker's plugins turn this spec into run {record.get('run_id')!r}, not "
                f"{job.run_id!r}; do the driver and the workers load the same plugins?",
            )
    except RunInterrupted:
        return INTERRUPTED
    except Exception as exc:  # e.g. a SpecError when a worker lacks a plugin
        record = failure_record(
            job.spec, job.run_id, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        )
    if artifact_dir is not None:
        with contextlib.suppress(OSError):  # keep it only if an observer wrote into it
            artifact_dir.rmdir()
            artifact_dir.parent.rmdir()
    import torch

    record["execution"] = {
        "executor": options.executor,
        "workers": options.workers,
        "worker": worker,
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(job.record_path, record)
    return str(record["status"])


def checkpoint_options(job: Job, options: ExecutionOptions) -> dict[str, Any]:
    """The engine's checkpoint arguments for ``job``: its checkpoint file, and the
    executor's default period for specs that leave ``checkpoint_every`` unset."""
    return {}


def main(argv: list[str] | None = None) -> int:
    """``python -m dstbench.suite.worker JOB.json``: run one job from a file (for clusters)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m dstbench.suite.worker JOB.json\n")
        return 2
    with open(args[0], encoding="utf-8") as handle:
        payload = json.load(handle)
    job = Job.from_dict(payload["job"])
    options = ExecutionOptions.from_dict(payload["options"])
    status = run_job(job, options, worker=payload.get("worker", platform.node()))
    if status == INTERRUPTED:
        return INTERRUPTED_EXIT
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
