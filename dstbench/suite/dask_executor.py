"""The built-in ``dask`` executor: runs as tasks on a dask.distributed cluster.

``address`` names a running scheduler (``tcp://head:8786``); without one, a ``LocalCluster``
of ``workers`` processes is started on this machine for the suite. Each task is one run, or
with the batched engine one group of runs trained together. A task hands its job to a *run
server* of its invocation on its worker: a Python process (``python -m
dstbench.suite.dask_executor --serve ...``) that imports torch and loads the plugins once,
then trains the jobs it is sent one after the other, writing each record itself, as a local
worker does (each run starts from the same process state, see
:func:`dstbench.engine.process.reset_process_state`). A worker thread keeps one server per
invocation; the driver closes them when the suite ends, and a server idle for
:data:`SERVER_IDLE_SECONDS` (its driver gone) closes by itself. Runs on CUDA (``--device
cuda``) ask for one ``GPU`` worker resource: start GPU workers with ``dask worker ...
--resources GPU=1`` (one worker per GPU).

Every invocation submits its tasks under keys of its own (``dstbench-<run id>-<token>-<n>``),
so that two suites sharing runs, or a run still stopping from an interrupted invocation, never
hand each other their results. Each task logs an event when its runs really start (not when
the scheduler queues them on a worker), which is when they are reported as started, on that
worker.

When a worker is lost (killed, out of memory, its machine gone), its runs are reported as
stopped at once, and the scheduler runs its tasks again on another worker, up to
``distributed.scheduler.allowed-failures`` times (then the run is recorded as failed with
dask's ``KilledWorker``). A run server whose dask worker died is asked to stop (SIGTERM) and
exits within :data:`STOP_GRACE_SECONDS`, so that it never runs on unseen beside its retry.
A worker that loses its scheduler stops its runs the same way (they checkpoint), so that
nothing trains on after the driver has reported the scheduler lost. A run stopped by a signal
while its worker lived on (exit status 75) is submitted again, up to :data:`MAX_SUBMISSIONS`
times in all. Ctrl-C cancels the futures and stops the run servers on every worker (SIGTERM,
then SIGKILL after :data:`STOP_GRACE_SECONDS`); records already written stay. The suite's
``timeout`` is enforced on the worker (times the runs of a group): a run past it is stopped
and recorded as failed; a group past it is split, each of its runs submitted again alone.

Every path must be on a filesystem that the workers share with the machine that runs the
suite; a record that a worker wrote is waited for up to :data:`RECORD_WAIT_SECONDS` (a
network filesystem may show it late) before the run is recorded as failed for want of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from dstbench.engine.interrupt import INTERRUPTED_EXIT
from dstbench.errors import SuiteError
from dstbench.suite.executors import ExecutionOptions, Job, Reporter
from dstbench.suite.progress import format_duration

#: Lines of a job's output kept when its run server dies without a record.
LOG_TAIL_LINES = 30
#: Seconds a run server gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0
#: Seconds between checks that a run server's dask worker is alive and has its scheduler.
PARENT_CHECK_SECONDS = 0.5
#: Seconds an idle run server waits for its invocation's next job before it closes.
SERVER_IDLE_SECONDS = 120.0
#: Seconds between the driver's looks at which workers the scheduler still has.
WORKERS_CHECK_SECONDS = 2.0
#: Seconds the driver waits for the record of a run that ended to be visible to it.
RECORD_WAIT_SECONDS = 30.0
#: Submissions of one run in one invocation when its run server keeps being stopped.
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
        # The scheduler's HTTP endpoints (health, metrics) on loopback and a free port: by
        # default they take port 8787, which another cluster on this machine may hold (dask
        # then warns and moves, and a test run with warnings as errors fails).
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
    )


class DaskExecutor:
    """Run jobs as dask.distributed tasks (see the module docstring).

    :param address: the scheduler's address; empty: a ``LocalCluster`` for this suite.
    :param workers: processes of that ``LocalCluster`` (0: the suite's ``-j``).
    :param threads: CPU threads of each run server.
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
        """Submit every job (or group of jobs) to the cluster and report each as it ends."""
        if not jobs:
            return
        if options.detach:
            raise SuiteError("executor 'dask' cannot --detach: its futures live in this process")
        from distributed import Client

        from dstbench.suite.local import job_units

        units = job_units(jobs, options)
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
        follower = None
        try:
            # Its own logs of a lost connection are tracebacks; the suite says it in one line.
            _quiet_client_logs()
            follower = _Follower(client, options, reporter, self.threads)
            try:
                follower.submit_all(units)
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
                    f"({type(exc).__name__}); its workers stop their runs (they checkpoint), "
                    "the records written stay: run the suite again once a scheduler answers"
                ) from None
        finally:
            if follower is not None and cluster is None:
                follower.close_servers()  # a LocalCluster's close ends them with its workers
            client.close()
            if cluster is not None:
                cluster.close()


@dataclass(frozen=True)
class _Submission:
    #: One job, or a group the engine trains together.
    jobs: tuple[Job, ...]
    #: 1 for the first submission of the jobs in this invocation, 2 for the next...
    number: int
    #: Each record's modification time when submitted (None: no record), to tell the record
    #: this submission writes from an older one.
    baselines: dict[str, int | None]


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
        #: run id -> the address of the worker it was last seen starting on.
        self.started: dict[str, str] = {}
        #: Runs reported stopped because their worker left the cluster, not restarted yet.
        self.orphaned: set[str] = set()
        #: (run id, submission) pairs whose start was seen: a second start is a retry.
        self.starts: set[tuple[str, int]] = set()
        #: (time, run ids, submission) of the start events already handled.
        self.events_seen: set[tuple[float, tuple[str, ...], int]] = set()
        #: Runs whose task ended but whose record is not visible here yet.
        self.awaited: dict[str, _Awaited] = {}
        self.workers_checked = 0.0

    # --- submitting ----------------------------------------------------------------------

    def submit_all(self, units: Sequence[Sequence[Job]]) -> None:
        for unit in units:
            self.submit(unit, 1)

    def submit(self, jobs: Sequence[Job], number: int) -> None:
        suffix = f"+{len(jobs) - 1}" if len(jobs) > 1 else ""
        future = self.client.submit(
            run_task,
            [job.to_dict() for job in jobs],
            self.payload,
            self.threads,
            self.token,
            number,
            key=f"dstbench-{jobs[0].run_id}{suffix}-{self.token}-{number}",
            pure=False,
            resources=self.resources,
        )
        baselines = {job.run_id: _mtime(job.record_path) for job in jobs}
        self.futures[future] = _Submission(tuple(jobs), number, baselines)

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
            self.check_workers()

    def read_events(self) -> None:
        """Report the runs that started since the last look (the tasks' own events)."""
        with contextlib.suppress(Exception):  # a progress nicety: never fail the suite on it
            for stamp, message in self.client.get_events(_topic(self.token)):
                run_ids = tuple(str(r) for r in message["run_ids"])
                event = (stamp, run_ids, int(message["submission"]))
                if event not in self.events_seen:  # the scheduler keeps the last 1000 only
                    self.events_seen.add(event)
                    for run_id in run_ids:
                        self.run_started(run_id, event[2], str(message["worker"]))

    def run_started(self, run_id: str, submission: int, worker: str) -> None:
        if run_id not in self.started or run_id in self.orphaned:
            self.reporter.started(run_id, f"dask {worker}")
        elif (run_id, submission) in self.starts:  # the scheduler retries it: a worker died
            previous = self.started[run_id]
            self.reporter.interrupted(
                run_id, f"{previous} was lost; the scheduler runs it again on {worker}"
            )
            self.reporter.started(run_id, f"dask {worker}")
        self.orphaned.discard(run_id)
        self.starts.add((run_id, submission))
        self.started[run_id] = worker

    def check_workers(self) -> None:
        """Report at once the runs of a worker that left the cluster (they are no longer
        running; the scheduler runs them again when a worker is free)."""
        now = time.monotonic()
        if now - self.workers_checked < WORKERS_CHECK_SECONDS:
            return
        self.workers_checked = now
        pending = {job.run_id for s in self.futures.values() for job in s.jobs}
        watched = {r: w for r, w in self.started.items() if r in pending and r not in self.orphaned}
        if not watched:
            return
        try:
            present = set(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:  # a progress nicety: a lost scheduler is reported by wait()
            return
        for run_id, worker in watched.items():
            if worker not in present:
                self.orphaned.add(run_id)
                self.reporter.interrupted(
                    run_id, f"{worker} was lost; the scheduler runs it again on another worker"
                )

    def ended(self, future: Any, submission: _Submission) -> None:
        for job in submission.jobs:
            if job.run_id not in self.started:  # it ran between two looks at the events
                self.started[job.run_id] = "dask"
                self.reporter.started(job.run_id, "dask")
        written = [job for job in submission.jobs if self.written(job, submission)]
        for job in written:
            self.orphaned.discard(job.run_id)
            self.reporter.finished(job.run_id)
        rest = [job for job in submission.jobs if job not in written]
        if not rest:
            return
        if future.status != "finished":
            try:
                exception = future.exception()
            except Exception as exc:  # cancelled
                exception = exc
            message = f"dask task failed: {type(exception).__name__}: {exception}"
            for job in rest:
                self.reporter.finished(job.run_id, message)
            return
        result = future.result()
        code, tail = result["code"], result["tail"]
        limit = format_duration(float(self.options.timeout or 0))
        took = format_duration(result["seconds"])
        if result["timed_out"] and len(submission.jobs) > 1:
            for job in rest:  # one run that never returns must not fail its siblings
                self.reporter.interrupted(
                    job.run_id,
                    f"its group of {len(submission.jobs)} ran past {took} (the time limit is "
                    f"{limit} a run); each runs again alone",
                )
                self.submit([job], submission.number + 1)
        elif result["timed_out"]:
            self.reporter.finished(
                rest[0].run_id,
                f"timed out after {took} (the time limit is {limit}; a stuck plugin or a slow "
                "setup?)",
                tail,
            )
        elif code == INTERRUPTED_EXIT:
            if submission.number < MAX_SUBMISSIONS:
                for job in rest:
                    self.reporter.interrupted(
                        job.run_id, "its worker process was stopped; submitted again"
                    )
                self.submit(rest, submission.number + 1)
            else:
                for job in rest:
                    self.reporter.interrupted(
                        job.run_id,
                        f"its worker process was stopped {MAX_SUBMISSIONS} times; it runs "
                        "again when the suite runs again",
                    )
        elif code in (0, 1):  # the server wrote the records (1: a run that did not succeed)
            deadline = time.monotonic() + RECORD_WAIT_SECONDS
            for job in rest:  # not visible here yet (a shared filesystem's caches)?
                baseline = submission.baselines[job.run_id]
                self.awaited[job.run_id] = _Awaited(job, code, tail, deadline, baseline)
        else:
            for job in rest:
                self.reporter.finished(
                    job.run_id, f"its worker process {_exit_text(code)} without a record", tail
                )

    @staticmethod
    def written(job: Job, submission: _Submission) -> bool:
        """Whether ``job``'s record changed since ``submission`` was made."""
        return _mtime(job.record_path) != submission.baselines[job.run_id]

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
        """Ctrl-C: cancel the futures and stop the run servers on every worker."""
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

    def close_servers(self) -> None:
        """The suite is over: close this invocation's idle run servers on every worker."""
        with contextlib.suppress(Exception):  # the cluster may be gone: they close by time
            self.client.run(_close_servers, self.token, on_error="ignore")


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


@dataclass(eq=False)
class _Server:
    """A run server on a dask worker: one Python process of one invocation that trains the
    jobs sent to it one after the other (it imports torch and loads the plugins once)."""

    process: subprocess.Popen[bytes]
    #: A private folder: the server's output (``log.txt``) and what it trains (``current``).
    folder: str
    token: str
    threads: int
    log: IO[bytes]
    #: Reply bytes read but not yet a whole line.
    pending: bytes = b""
    #: When it last finished a job (for the idle timeout).
    idle_since: float = 0.0

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, payload: dict[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(payload).encode() + b"\n")
        stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any] | None:
        """The server's reply to its job, waiting at most ``timeout`` seconds (None: none
        yet). :raises EOFError: the server ended without replying."""
        stdout = self.process.stdout
        assert stdout is not None
        while b"\n" not in self.pending:
            ready, _, _ = select.select([stdout], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                raise EOFError
            self.pending += chunk
            timeout = 0.0
        line, self.pending = self.pending.split(b"\n", 1)
        return dict(json.loads(line))

    def log_size(self) -> int:
        return os.fstat(self.log.fileno()).st_size

    def log_tail(self, offset: int) -> str:
        """The last lines the server wrote since ``offset`` (its current job's output)."""
        self.log.seek(offset)
        text = self.log.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])

    def close(self) -> None:
        """Stop the server (end of its input; SIGTERM, then SIGKILL, when it lingers) and
        remove its folder."""
        if self.alive():
            with contextlib.suppress(OSError):
                if self.process.stdin is not None:
                    self.process.stdin.close()
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _stop(self.process)
        else:
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.log):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.folder, ignore_errors=True)


#: token -> the run servers of that invocation in this worker process (busy or idle).
_SERVERS: dict[str, set[_Server]] = {}
#: Idle run servers, ready for the next job of their invocation.
_IDLE: list[_Server] = []
#: Tokens of invocations that were stopped (their late tasks do not start their runs).
_STOPPED: set[str] = set()
#: Servers already sent SIGTERM by :func:`_signal_runs`.
_SIGNALLED: set[int] = set()
_LOCK = threading.Lock()
#: Whether this worker process runs the thread that closes idle servers.
_JANITOR: list[threading.Thread] = []


def _signal_runs(token: str, kill: bool = False) -> int:
    """On a worker (``client.run``): stop the invocation ``token``'s run servers (SIGTERM
    once, or SIGKILL with ``kill``); return how many are still alive."""
    with _LOCK:
        _STOPPED.add(token)
        servers = list(_SERVERS.get(token, ()))
    alive = 0
    for server in servers:
        if not server.alive():
            continue
        alive += 1
        with contextlib.suppress(OSError):
            if kill:
                server.process.kill()
            elif server.process.pid not in _SIGNALLED:
                _SIGNALLED.add(server.process.pid)
                server.process.terminate()
    return alive


def _close_servers(token: str) -> int:
    """On a worker (``client.run``, when an invocation ends): close its idle run servers;
    return how many were closed."""
    with _LOCK:
        closing = [server for server in _IDLE if server.token == token]
        for server in closing:
            _forget(server)
    for server in closing:
        server.close()
    return len(closing)


def _forget(server: _Server) -> None:
    """Drop ``server`` from the registries (with :data:`_LOCK` held)."""
    if server in _IDLE:
        _IDLE.remove(server)
    servers = _SERVERS.get(server.token)
    if servers is not None:
        servers.discard(server)
        if not servers:
            del _SERVERS[server.token]
    _SIGNALLED.discard(server.process.pid)


def _acquire(token: str, threads: int) -> _Server:
    """An idle run server of invocation ``token`` with ``threads`` threads, or a new one."""
    with _LOCK:
        for server in list(_IDLE):
            if server.token == token and server.threads == threads:
                _IDLE.remove(server)
                if server.alive():
                    return server
                _forget(server)
    server = _start_server(token, threads)
    with _LOCK:
        _SERVERS.setdefault(token, set()).add(server)
        stopped = token in _STOPPED
        if not _JANITOR:
            janitor = threading.Thread(target=_close_idle, name="dstbench-janitor", daemon=True)
            janitor.start()
            _JANITOR.append(janitor)
    if stopped:  # the invocation was stopped while this server was starting
        server.process.terminate()
    return server


def _release(server: _Server) -> None:
    """Put ``server`` back for the next job, or close it when it is not usable any more."""
    if server.alive():
        server.idle_since = time.monotonic()
        with _LOCK:
            if server.token not in _STOPPED:
                _IDLE.append(server)
                return
    with _LOCK:
        _forget(server)
    server.close()


def _discard(server: _Server) -> None:
    """Stop ``server`` (SIGTERM, SIGKILL after the grace period) and forget it."""
    if server.alive():
        _stop(server.process)
    with _LOCK:
        _forget(server)
    server.close()


def _close_idle() -> None:
    """Close the servers idle for :data:`SERVER_IDLE_SECONDS` (their invocation's driver
    died or lost its scheduler before it could close them)."""
    while True:
        time.sleep(min(5.0, SERVER_IDLE_SECONDS))
        now = time.monotonic()
        with _LOCK:
            stale = [s for s in _IDLE if now - s.idle_since > SERVER_IDLE_SECONDS]
            for server in stale:
                _forget(server)
        for server in stale:
            server.close()


def _start_server(token: str, threads: int) -> _Server:
    folder = tempfile.mkdtemp(prefix="dstbench-dask-")
    log = open(os.path.join(folder, "log.txt"), "w+b")  # noqa: SIM115 (kept with the server)
    threads_env = {var: str(threads) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [
        sys.executable, "-m", _MODULE, "--serve", folder, str(os.getpid()), str(threads)
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,  # replies; the server's own output goes to its log
        stderr=log,
        env={**os.environ, **threads_env},
    )
    return _Server(process, folder, token, threads, log)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after the grace period; wait for it."""
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _log_started(token: str, run_ids: Sequence[str], submission: int) -> None:
    """Tell the driver, through a scheduler event, that the runs start on this worker."""
    with contextlib.suppress(Exception):  # a progress nicety
        from distributed import get_worker

        worker = get_worker()
        message = {"run_ids": list(run_ids), "submission": submission, "worker": worker.address}
        worker.log_event(_topic(token), message)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"dask {get_worker().address}"
    except (ImportError, ValueError):
        return f"dask {time.strftime('%H:%M:%S')}"


def _worker_closing() -> bool:
    """Whether this task's dask worker is closing: it lost its scheduler (the worker then
    waits for its tasks before it exits) or is being shut down."""
    try:
        from distributed import get_worker

        status = get_worker().status
    except (ImportError, ValueError):
        return False
    return getattr(status, "name", "") in ("closing", "closed", "failed")


def run_task(
    jobs: list[dict[str, Any]],
    options: dict[str, Any],
    threads: int,
    token: str = "",
    submission: int = 1,
) -> dict[str, Any]:
    """The dask task: train ``jobs`` (one job, or a group the engine trains together) in
    this worker's run server of the invocation ``token``.

    The job is stopped (SIGTERM: it checkpoints, then exits) when it passes the suite's time
    limit (times the jobs in the group), and when the worker loses its scheduler, so that no
    run trains on unseen after its driver is gone.

    :returns: ``code`` (the server's exit status for the job: 0 ok, 1 a run that did not
        succeed, :data:`INTERRUPTED_EXIT` stopped by a signal, another status or a negative
        signal number when the server died; None when the invocation was stopped before the
        job started), ``tail`` (the job's last lines of output), ``timed_out``,
        ``seconds`` (how long it ran) and ``lost`` (stopped because the worker lost its
        scheduler).
    """
    with _LOCK:
        if token in _STOPPED:
            return {"code": None, "tail": "", "timed_out": False, "seconds": 0.0, "lost": False}
    _log_started(token, [str(job["run_id"]) for job in jobs], submission)
    limit = options.get("timeout")
    deadline = None if limit is None else float(limit) * len(jobs)
    payload = {"jobs": jobs, "options": options, "worker": _worker_name()}
    server, offset = _send(token, threads, payload)
    started = time.monotonic()
    timed_out = lost = False
    code: int | None = None
    try:
        while True:
            reply = server.reply(PARENT_CHECK_SECONDS)
            if reply is not None:
                code = int(reply["code"])
                break
            if deadline is not None and time.monotonic() - started > deadline:
                timed_out = True
                break
            if _worker_closing():
                lost = True
                break
    except EOFError:  # the server died (killed, a crash): its exit status says how
        pass
    except BaseException:  # the task itself was interrupted: stop the run
        _discard(server)
        raise
    seconds = time.monotonic() - started
    if timed_out or lost:
        _stop(server.process)  # SIGTERM: the run checkpoints and the server exits
    if code is None:
        code = server.process.wait()
    tail = server.log_tail(offset)
    if server.alive() and code != INTERRUPTED_EXIT:
        _release(server)
    else:
        _discard(server)
    return {"code": code, "tail": tail, "timed_out": timed_out, "seconds": seconds, "lost": lost}


def _send(token: str, threads: int, payload: dict[str, Any]) -> tuple[_Server, int]:
    """Hand ``payload`` to a run server; return it and where the job's output starts in its
    log. A server that died while idle is replaced (once)."""
    for attempt in (1, 2):
        server = _acquire(token, threads)
        offset = server.log_size()
        try:
            server.send(payload)
            return server, offset
        except (BrokenPipeError, ValueError):  # it ended after it was taken
            _discard(server)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- the run server ------------------------------------------------------------------------


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


def serve(folder: str, parent: int, threads: int) -> int:
    """A run server: read jobs (one JSON payload a line, as :func:`dstbench.suite.worker.
    run_payload` takes) from standard input until it ends, train each, and answer each with
    ``{"code": status}`` on standard output. Everything else the runs print goes to standard
    error (the worker's log of this server). A job stopped by a signal ends the server."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # print() of a run or plugin goes to the log, never into the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops the runs, not Ctrl-C
    _watch_parent(parent)
    from dstbench.plugins import get_plugins
    from dstbench.suite import worker
    from dstbench.suite.reaping import reap_descendants

    worker.configure_threads(threads)
    get_plugins()  # once, before the first job
    current = os.path.join(folder, "current")
    for line in sys.stdin:
        payload = json.loads(line)
        with open(current, "w", encoding="utf-8") as handle:  # what this server trains now
            json.dump([job["run_id"] for job in payload["jobs"]], handle)
        try:
            code = worker.run_payload(payload)
        finally:
            reap_descendants()  # what the runs' plugins started ends with them
            with contextlib.suppress(OSError):
                os.unlink(current)
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps({"code": code}) + "\n")
        if code == INTERRUPTED_EXIT:
            return code  # a stop request: this server is done
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dstbench.suite.dask_executor --serve FOLDER PARENT_PID THREADS``: a run
    server (:func:`serve`) that stops when its dask worker (``PARENT_PID``) is gone."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[0] != "--serve":
        sys.stderr.write(
            "usage: python -m dstbench.suite.dask_executor --serve FOLDER PARENT_PID THREADS\n"
        )
        return 2
    return serve(args[1], int(args[2]), int(args[3]))


if __name__ == "__main__":
    sys.exit(main())
