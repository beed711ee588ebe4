"""The built-in ``dask`` executor: runs as tasks on a dask.distributed cluster.

``address`` names a running scheduler (``tcp://head:8786``); without one, a ``LocalCluster``
of ``workers`` processes is started on this machine for the suite. Each task runs its run in a
fresh ``python -m dstbench.suite.dask_executor`` subprocess (which runs
:func:`dstbench.suite.worker.main`), so that no state or GPU memory leaks from one run to the
next, and the subprocess writes the record itself. Runs on CUDA (``--device cuda``) ask for
one ``GPU`` worker resource: start GPU workers with ``dask worker ... --resources GPU=1`` (one
worker per GPU).

Every invocation submits its tasks under keys of its own (``dstbench-<run id>-<token>-<n>``),
so that two suites sharing runs, or a run still stopping from an interrupted invocation, never
hand each other their results. Each task logs an event when its run really starts (not when
the scheduler queues it on a worker), which is when the run is reported as started, on that
worker.

When a worker is lost (killed, out of memory, its machine gone), the scheduler runs its tasks
again on another worker, up to ``distributed.scheduler.allowed-failures`` times (then the run
is recorded as failed with dask's ``KilledWorker``). A run's subprocess whose dask worker died
is asked to stop (SIGTERM) and exits within :data:`STOP_GRACE_SECONDS`, so that it never runs
on unseen beside its retry. A run whose subprocess was stopped by a signal while its worker
lived on (exit status 75) is submitted again, up to :data:`MAX_SUBMISSIONS` times in all.
Ctrl-C cancels the futures and stops the runs' subprocesses on every worker (SIGTERM, then
SIGKILL after :data:`STOP_GRACE_SECONDS`); records already written stay. The suite's
``timeout`` is enforced on the worker: a run past it is stopped and recorded as failed.

Every path must be on a filesystem that the workers share with the machine that runs the
suite; a record that a worker wrote is waited for up to :data:`RECORD_WAIT_SECONDS` (a
network filesystem may show it late) before the run is recorded as failed for want of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dstbench.engine.interrupt import INTERRUPTED_EXIT
from dstbench.errors import SuiteError
from dstbench.suite.executors import ExecutionOptions, Job, Reporter
from dstbench.suite.progress import format_duration

#: Lines of a run's output kept when its subprocess dies without a record.
LOG_TAIL_LINES = 30
#: Seconds a run's subprocess gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0
#: Seconds between checks, in a run's subprocess, that its dask worker is still alive.
PARENT_CHECK_SECONDS = 0.5
#: Seconds the driver waits for the record of a run that ended to be visible to it.
RECORD_WAIT_SECONDS = 30.0
#: Submissions of one run in one invocation when its subprocess keeps being stopped.
MAX_SUBMISSIONS = 3
#: What the tasks start, with ``-m`` (this module's :func:`main`).
_MODULE = "dstbench.suite.dask_executor"


def _requirements() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SuiteError(
            "executor 'dask' needs dask.distributed: pip install 'dstbench[dask]'"
        ) from None


def local_cluster(workers: int) -> Any:
    """A dask ``LocalCluster`` of ``workers`` single-threaded processes on 127.0.0.1, with no
    dashboard (nothing of it answers on another interface, and no web page is served)."""
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
        scheduler_kwargs={"dashboard": False},
    )


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
        from distributed import Client

        cluster = None
        if self.address:
            try:
                client = Client(self.address, timeout=self.timeout)
            except OSError as exc:
                raise SuiteError(
                    f"executor 'dask': no scheduler answers at {self.address}: {exc}"
                ) from None
        else:
            cluster = local_cluster(self.workers or options.workers)
            client = Client(cluster)
        try:
            # Its own logs of a lost connection are tracebacks; the suite says it in one line.
            _quiet_client_logs()
            follower = _Follower(client, options, reporter, self.threads)
            try:
                follower.submit_all(jobs)
                follower.follow()
            except KeyboardInterrupt:
                follower.stop()
                raise
            except Exception as exc:
                if not _scheduler_lost(exc):
                    raise
                where = self.address or "this machine's LocalCluster"
                raise SuiteError(
                    f"executor 'dask': the scheduler at {where} was lost mid-suite "
                    f"({type(exc).__name__}); the records written stay, run the suite again "
                    "once a scheduler answers"
                ) from None
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@dataclass(frozen=True)
class _Submission:
    job: Job
    #: 1 for the first submission of the job in this invocation, 2 for the next...
    number: int
    #: The record's modification time when submitted (None: no record), to tell the record
    #: this submission writes from an older one.
    baseline: int | None


@dataclass(frozen=True)
class _Awaited:
    job: Job
    code: int
    tail: str
    deadline: float
    #: The record's modification time when the job was submitted.
    baseline: int | None


class _Follower:
    """Submits the jobs of one invocation and follows them until each has ended."""

    def __init__(
        self, client: Any, options: ExecutionOptions, reporter: Reporter, threads: int
    ) -> None:
        self.client = client
        self.options = options
        self.reporter = reporter
        self.threads = threads
        self.token = secrets.token_hex(4)
        self.payload = {**options.to_dict(), "executor": "dask"}
        self.resources = {"GPU": 1} if options.device.startswith("cuda") else None
        self.futures: dict[Any, _Submission] = {}
        #: run id -> the worker it was last seen starting on.
        self.started: dict[str, str] = {}
        #: (run id, submission) pairs whose start was seen: a second start is a retry.
        self.starts: set[tuple[str, int]] = set()
        #: (time, run id, submission) of the start events already handled.
        self.events_seen: set[tuple[float, str, int]] = set()
        #: Runs whose task ended but whose record is not visible here yet.
        self.awaited: dict[str, _Awaited] = {}

    # --- submitting ----------------------------------------------------------------------

    def submit_all(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            self.submit(job, 1)

    def submit(self, job: Job, number: int) -> None:
        future = self.client.submit(
            run_in_subprocess,
            job.to_dict(),
            self.payload,
            self.threads,
            self.token,
            number,
            key=f"dstbench-{job.run_id}-{self.token}-{number}",
            pure=False,
            resources=self.resources,
        )
        self.futures[future] = _Submission(job, number, _mtime(job.record_path))

    # --- following -----------------------------------------------------------------------

    def follow(self) -> None:
        from distributed import wait

        while self.futures or self.awaited:
            done: set[Any] = set()
            if self.futures:
                try:
                    done, _ = wait(list(self.futures), timeout=1.0, return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing ended this second
                    done = set()
            else:
                time.sleep(0.2)
            self.read_events()
            for future in done:
                self.ended(future, self.futures.pop(future))
            self.check_awaited()

    def read_events(self) -> None:
        """Report the runs that started since the last look (the tasks' own events)."""
        with contextlib.suppress(Exception):  # a progress nicety: never fail the suite on it
            for stamp, message in self.client.get_events(_topic(self.token)):
                event = (stamp, str(message["run_id"]), int(message["submission"]))
                if event not in self.events_seen:  # the scheduler keeps the last 1000 only
                    self.events_seen.add(event)
                    self.run_started(event[1], event[2], str(message["worker"]))

    def run_started(self, run_id: str, submission: int, worker: str) -> None:
        where = f"dask {worker}"
        if run_id not in self.started:
            self.reporter.started(run_id, where)
        elif (run_id, submission) in self.starts:  # the scheduler retries it: a worker died
            previous = self.started[run_id]
            self.reporter.interrupted(
                run_id, f"{previous} was lost; the scheduler runs it again on {worker}"
            )
        self.starts.add((run_id, submission))
        self.started[run_id] = where

    def ended(self, future: Any, submission: _Submission) -> None:
        job = submission.job
        if job.run_id not in self.started:  # it ran between two looks at the events
            self.started[job.run_id] = "dask"
            self.reporter.started(job.run_id, "dask")
        if future.status != "finished":
            try:
                exception = future.exception()
            except Exception as exc:  # cancelled
                exception = exc
            message = f"dask task failed: {type(exception).__name__}: {exception}"
            self.reporter.finished(job.run_id, message)
            return
        result = future.result()
        code, tail = result["code"], result["tail"]
        if result["timed_out"]:
            limit = format_duration(float(self.options.timeout or 0))
            self.reporter.finished(
                job.run_id,
                f"timed out after {format_duration(result['seconds'])} (the time limit is "
                f"{limit}; a stuck plugin or a slow setup?)",
                tail,
            )
        elif code == INTERRUPTED_EXIT:
            if submission.number < MAX_SUBMISSIONS:
                self.reporter.interrupted(
                    job.run_id, "its worker process was stopped; submitted again"
                )
                self.submit(job, submission.number + 1)
            else:
                self.reporter.interrupted(
                    job.run_id,
                    f"its worker process was stopped {MAX_SUBMISSIONS} times; it runs again "
                    "when the suite runs again",
                )
        elif code in (0, 1):  # the worker wrote the record (1: a run that did not succeed)
            if _mtime(job.record_path) != submission.baseline:
                self.reporter.finished(job.run_id)
            else:  # not visible here yet (a shared filesystem's caches), or not written
                deadline = time.monotonic() + RECORD_WAIT_SECONDS
                self.awaited[job.run_id] = _Awaited(job, code, tail, deadline, submission.baseline)
        else:
            self.reporter.finished(
                job.run_id, f"its worker process {_exit_text(code)} without a record", tail
            )

    def check_awaited(self) -> None:
        now = time.monotonic()
        for run_id, awaited in list(self.awaited.items()):
            if _mtime(awaited.job.record_path) != awaited.baseline:
                del self.awaited[run_id]
                self.reporter.finished(run_id)
            elif now >= awaited.deadline:
                del self.awaited[run_id]
                message = (
                    f"its worker process exited with status {awaited.code} but no new record "
                    f"appeared at {awaited.job.record_path} within "
                    f"{format_duration(RECORD_WAIT_SECONDS)}: is the results directory on a "
                    "filesystem that the dask workers share?"
                )
                self.reporter.finished(run_id, message, awaited.tail)

    # --- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ctrl-C: cancel the futures and stop the runs' subprocesses on every worker."""
        with contextlib.suppress(Exception):
            self.client.cancel(list(self.futures))
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        kill = False
        while True:
            try:
                alive = self.client.run(_signal_runs, self.token, kill, on_error="ignore")
            except Exception:  # the cluster is gone: nothing of ours runs there any more
                return
            if kill or not any(alive.values()):
                return
            if time.monotonic() >= deadline:
                kill = True
            else:
                time.sleep(0.2)


def _quiet_client_logs() -> None:
    """Keep dask's client-side loggers to critical messages in the driver (they log every
    lost connection with its traceback; the suite reports a lost scheduler in one line)."""
    import logging

    for name in ("distributed.client", "distributed.utils", "distributed.core", "distributed.comm"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _scheduler_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says that the client lost its scheduler (its futures were cancelled,
    its connection closed), rather than a bug of ours."""
    from concurrent.futures import CancelledError

    names = {cls.__name__ for cls in type(exc).__mro__}
    lost = {"FuturesCancelledError", "CommClosedError", "StreamClosedError"}
    return bool(names & lost) or isinstance(exc, CancelledError)


def _topic(token: str) -> str:
    return f"dstbench-{token}"


def _mtime(path: str) -> int | None:
    """The file's modification time, read through an open file (so that a network
    filesystem revalidates its cached attributes); None when it is missing."""
    try:
        with open(path, "rb") as handle:
            return os.fstat(handle.fileno()).st_mtime_ns
    except OSError:
        return None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "ended with an unknown status"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


# --- on the dask workers -------------------------------------------------------------------

#: token -> the run subprocesses of that invocation running in this worker process.
_RUNNING: dict[str, set[subprocess.Popen[bytes]]] = {}
#: Tokens of invocations that were stopped (their late tasks do not start their runs).
_STOPPED: set[str] = set()
#: Subprocesses already sent SIGTERM by :func:`_signal_runs`.
_SIGNALLED: set[int] = set()
_LOCK = threading.Lock()


def _signal_runs(token: str, kill: bool = False) -> int:
    """On a worker (``client.run``): stop the invocation ``token``'s runs (SIGTERM once, or
    SIGKILL with ``kill``); return how many are still alive."""
    with _LOCK:
        _STOPPED.add(token)
        processes = list(_RUNNING.get(token, ()))
    alive = 0
    for process in processes:
        if process.poll() is not None:
            continue
        alive += 1
        with contextlib.suppress(OSError):
            if kill:
                process.kill()
            elif process.pid not in _SIGNALLED:
                _SIGNALLED.add(process.pid)
                process.terminate()
    return alive


def _register(token: str, process: subprocess.Popen[bytes]) -> None:
    with _LOCK:
        _RUNNING.setdefault(token, set()).add(process)
        stopped = token in _STOPPED
    if stopped:  # the invocation was stopped while this task was starting
        process.terminate()


def _unregister(token: str, process: subprocess.Popen[bytes]) -> None:
    with _LOCK:
        running = _RUNNING.get(token)
        if running is not None:
            running.discard(process)
            if not running:
                del _RUNNING[token]
        _SIGNALLED.discard(process.pid)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after the grace period; wait for it."""
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_started(token: str, run_id: str, submission: int) -> None:
    """Tell the driver, through a scheduler event, that the run starts on this worker."""
    with contextlib.suppress(Exception):  # a progress nicety
        from distributed import get_worker

        worker = get_worker()
        message = {"run_id": run_id, "submission": submission, "worker": worker.address}
        worker.log_event(_topic(token), message)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"dask {get_worker().address}"
    except (ImportError, ValueError):
        return f"dask {time.strftime('%H:%M:%S')}"


def run_in_subprocess(
    job: dict[str, Any],
    options: dict[str, Any],
    threads: int,
    token: str = "",
    submission: int = 1,
) -> dict[str, Any]:
    """The dask task: run one job in a fresh subprocess.

    :returns: ``code`` (the subprocess's exit status, None when it did not start because the
        invocation was stopped), ``tail`` (the last lines of its output), ``timed_out``
        (whether it was stopped at the suite's time limit) and ``seconds`` (how long it ran).
    """
    with _LOCK:
        if token in _STOPPED:
            return {"code": None, "tail": "", "timed_out": False, "seconds": 0.0}
    _log_started(token, str(job["run_id"]), submission)
    threads_env = {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env = {**os.environ, **threads_env}
    limit = options.get("timeout")
    timed_out = False
    with tempfile.TemporaryDirectory(prefix="dstbench-dask-") as folder:
        path = os.path.join(folder, "job.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"job": job, "options": options, "worker": _worker_name()}, handle)
        log_path = os.path.join(folder, "log.txt")
        with open(log_path, "w+", encoding="utf-8") as log:
            command = [sys.executable, "-m", _MODULE, path, str(os.getpid())]
            started = time.monotonic()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            _register(token, process)
            try:
                try:
                    code = process.wait(timeout=limit)
                    seconds = time.monotonic() - started
                except subprocess.TimeoutExpired:
                    seconds = time.monotonic() - started
                    timed_out = True
                    _stop(process)
                    code = process.returncode
            except BaseException:  # the task itself was interrupted: stop the run
                _stop(process)
                raise
            finally:
                _unregister(token, process)
            log.seek(0)
            tail = "\n".join(log.read().splitlines()[-LOG_TAIL_LINES:])
    return {"code": code, "tail": tail, "timed_out": timed_out, "seconds": seconds}


# --- the run's subprocess ------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    """Stop this process when the dask worker that started it is gone (even by SIGKILL):
    SIGTERM (the run stops as on any stop request), and exit after the grace period."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_SECONDS)
        sys.stdout.flush()
        os._exit(INTERRUPTED_EXIT)  # no record: the scheduler's retry runs it elsewhere

    threading.Thread(target=watch, name="dstbench-parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m dstbench.suite.dask_executor JOB.json PARENT_PID``: one run, as
    ``python -m dstbench.suite.worker JOB.json`` does, in a process that ignores Ctrl-C (the
    driver stops it) and stops when its dask worker (``PARENT_PID``) is gone."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m dstbench.suite.dask_executor JOB.json PARENT_PID\n")
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(int(args[1]))
    from dstbench.suite import worker
    from dstbench.suite.reaping import reap_descendants

    try:
        return worker.main([args[0]])
    finally:
        reap_descendants()  # what the run's plugins started ends with the run


if __name__ == "__main__":
    sys.exit(main())
