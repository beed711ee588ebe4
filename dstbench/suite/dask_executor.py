"""The built-in ``dask`` executor: runs as tasks on a dask.distributed cluster.

``address`` names a running scheduler (``tcp://head:8786``); without one, a ``LocalCluster``
of ``workers`` processes is started on this machine for the suite. Each task runs its run in a
fresh ``python -m dstbench.suite.worker`` subprocess, so that no state or GPU memory leaks
from one run to the next, and the subprocess writes the record itself. Runs on CUDA
(``--device cuda``) ask for one ``GPU`` worker resource: start GPU workers with
``dask worker ... --resources GPU=1`` (one worker per GPU).

When a worker is lost, the scheduler runs its tasks again on another worker (up to its
``distributed.scheduler.allowed-failures``); the lost run's subprocess gets SIGTERM as its
parent dies, checkpoints, and the retry resumes from that checkpoint. Ctrl-C cancels the
futures; records already written stay. Every path must be on a filesystem that the workers
share with the machine that runs the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from dstbench.engine.interrupt import INTERRUPTED_EXIT
from dstbench.errors import SuiteError
from dstbench.suite.executors import ExecutionOptions, Job, Reporter

#: Lines of a run's output kept when its subprocess dies without a record.
LOG_TAIL_LINES = 30


def _requirements() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SuiteError(
            "executor 'dask' needs dask.distributed: pip install 'dstbench[dask]'"
        ) from None


class DaskExecutor:
    """Run jobs as dask.distributed tasks (see the module docstring).

    :param address: the scheduler's address; empty: a ``LocalCluster`` for this suite.
    :param workers: processes of that ``LocalCluster`` (0: the suite's ``-j``).
    :param threads: CPU threads of each run's subprocess.
    :param timeout: seconds to wait for the scheduler to answer.
    """

    def __init__(
        self, address: str = "", workers: int = 0, threads: int = 1, timeout: float = 30.0
    ) -> None:
        if workers < 0 or threads < 1:
            raise SuiteError(
                "executor 'dask': 'workers' expects an integer >= 0 and 'threads' one >= 1"
            )
        self.address = address
        self.workers = workers
        self.threads = threads
        self.timeout = timeout
        _requirements()

    def run(self, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter) -> None:
        """Submit every job to the cluster and report each as it ends."""
        if not jobs:
            return
        if options.detach:
            raise SuiteError("executor 'dask' cannot --detach: its futures live in this process")
        from distributed import Client, LocalCluster

        cluster = None
        if self.address:
            try:
                client = Client(self.address, timeout=self.timeout)
            except OSError as exc:
                raise SuiteError(
                    f"executor 'dask': no scheduler answers at {self.address}: {exc}"
                ) from None
        else:
            cluster = LocalCluster(
                n_workers=self.workers or options.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
            client = Client(cluster)
        try:
            self._run(client, jobs, options, reporter)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _run(
        self, client: Any, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter
    ) -> None:
        from distributed import wait

        resources = {"GPU": 1} if options.device.startswith("cuda") else None
        payload = {**options.to_dict(), "executor": "dask"}
        futures = {
            client.submit(
                run_in_subprocess,
                job.to_dict(),
                payload,
                self.threads,
                key=f"dstbench-{job.run_id}",
                pure=False,
                resources=resources,
            ): job
            for job in jobs
        }
        started: set[str] = set()
        try:
            while futures:
                try:
                    done, _ = wait(list(futures), timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing ended this second
                    done = set()
                self._report_started(client, futures, started, reporter)
                for future in done:
                    job = futures.pop(future)
                    if job.run_id not in started:
                        started.add(job.run_id)
                        reporter.started(job.run_id, "dask")
                    self._report_end(future, job, reporter)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise

    @staticmethod
    def _report_started(
        client: Any, futures: dict[Any, Job], started: set[str], reporter: Reporter
    ) -> None:
        with contextlib.suppress(Exception):  # a progress nicety: never fail the suite on it
            keys = {f.key: job for f, job in futures.items()}
            for worker, processing in client.processing().items():
                for key in processing:
                    job = keys.get(key)
                    if job is not None and job.run_id not in started:
                        started.add(job.run_id)
                        reporter.started(job.run_id, f"dask {worker}")

    @staticmethod
    def _report_end(future: Any, job: Job, reporter: Reporter) -> None:
        if future.status != "finished":
            try:
                exception = future.exception()
            except Exception as exc:  # cancelled
                exception = exc
            reporter.finished(
                job.run_id, f"dask task failed: {type(exception).__name__}: {exception}"
            )
            return
        code, tail = future.result()
        if code == INTERRUPTED_EXIT:
            reporter.interrupted(job.run_id, "its worker process was stopped")
        elif code in (0, 1):  # the worker wrote the record (1: a run that did not succeed)
            reporter.finished(job.run_id)
        else:
            reporter.finished(job.run_id, f"its worker process exited with status {code}", tail)


def _die_with_parent() -> None:
    """In the run's subprocess: get SIGTERM when the dask worker dies (Linux), so that a
    lost worker's run checkpoints instead of running on unseen."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_in_subprocess(
    job: dict[str, Any], options: dict[str, Any], threads: int
) -> tuple[int, str]:
    """The dask task: run one job in a fresh worker subprocess; return its exit status and the
    tail of its output."""
    threads_env = {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**os.environ, **threads_env}
    with tempfile.TemporaryDirectory(prefix="dstbench-dask-") as folder:
        path = os.path.join(folder, "job.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"job": job, "options": options, "worker": _worker_name()}, handle)
        log_path = os.path.join(folder, "log.txt")
        with open(log_path, "w+", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "dstbench.suite.worker", path],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            try:
                code = process.wait()
            except BaseException:  # the task was cancelled: stop the run (it checkpoints)
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-LOG_TAIL_LINES:])
    return code, tail


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"dask {get_worker().address}"
    except (ImportError, ValueError):
        return f"dask {time.strftime('%H:%M:%S')}"
