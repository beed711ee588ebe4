"""The built-in ``local`` executor: runs in parallel worker processes on this machine.

Each worker is a fresh interpreter (the ``spawn`` start method: no state inherited from the
driver, CUDA-safe), loads the plugins once, uses a fair share of the CPU threads, and gets its
own GPU round-robin when there are GPUs. The driver hands one job at a time (with the batched
engine: one group of compatible jobs, trained together) to each idle worker over a private
pipe and waits on the pipes and the processes together, so it notices at once when a worker
dies: the runs it held are reported as failed, a fresh worker replaces it and the suite goes
on.

Workers ignore Ctrl-C (the driver stops them) and exit by themselves when the driver dies, even
by SIGKILL, so an interrupted suite never leaves stray trainers behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from dstbench.errors import SuiteError
from dstbench.io import OutputError
from dstbench.plugins import get_plugins
from dstbench.suite.executors import ExecutionOptions, Job, Reporter, available_cpus
from dstbench.suite.progress import format_duration
from dstbench.suite.reaping import kill_group, lead_own_group, reap_group
from dstbench.suite.worker import configure_threads, make_engine, run_group

#: Seconds between checks, in a worker, that the driver is still alive.
PARENT_CHECK_SECONDS = 0.5
#: Seconds a stopping worker gets before it is killed.
STOP_GRACE_SECONDS = 5.0
#: Workers killed by a signal while starting that are replaced before the suite gives up.
MAX_STARTUP_DEATHS = 3


def worker_devices(device: str, workers: int) -> list[str]:
    """The device of each worker: GPUs round-robin for ``auto``/``cuda`` when present.

    :raises SuiteError: when CUDA is asked for and there is none (rather than failing every
        run of the suite one after the other).
    """
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SuiteError(f"--device {device}: no CUDA device is available here")
    if device in ("auto", "cuda"):
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            return [f"cuda:{i % count}" for i in range(workers)]
        return ["cpu"] * workers
    return [device] * workers


class LocalExecutor:
    """Run jobs in ``workers`` local processes (see the module docstring).

    :param threads: CPU threads per worker; 0 (default) gives each worker an equal share of
        the CPUs this process may use (at least one).
    """

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    def run(self, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter) -> None:
        """Run every job; see :mod:`dstbench.suite.executors` for the contract."""
        if not jobs:
            return
        units = job_units(jobs, options)
        count = max(1, min(options.workers, len(units)))
        threads = self.threads or max(1, available_cpus() // count)
        pool = _Pool(options, reporter, worker_devices(options.device, count), threads)
        pool.run(units)


def job_units(jobs: Sequence[Job], options: ExecutionOptions) -> list[list[Job]]:
    """What a worker takes at a time: one job, or with the batched engine a group of
    compatible jobs (``options.group`` at most; 0: one group per worker), largest first."""
    engine = make_engine(options.engine, get_plugins().registry)
    units = engine.groups(jobs, options.group, options.workers)
    # Largest groups first, so that the last group to start is a small one.
    return sorted(units, key=len, reverse=True)


# --- the driver side ---------------------------------------------------------------------


@dataclass
class _Worker:
    name: str
    index: int
    process: BaseProcess
    conn: Connection
    device: str
    ready: bool = False
    #: The jobs it is running: one, or a group trained together by the batched engine.
    jobs: list[Job] = field(default_factory=list)
    #: When its current jobs were handed to it, or when the last of them finished
    #: (``time.monotonic()``): the time limit counts from there.
    job_started: float = 0.0


class _Pool:
    def __init__(
        self, options: ExecutionOptions, reporter: Reporter, devices: list[str], threads: int
    ) -> None:
        self.options = options
        self.reporter = reporter
        self.devices = devices
        self.threads = threads
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[_Worker] = []
        self.pending: deque[list[Job]] = deque()
        #: Workers killed by a signal before they were ready, so far.
        self.startup_deaths = 0

    def start(self, index: int) -> _Worker:
        ours, theirs = self.context.Pipe(duplex=True)
        name = f"w{index}"
        device = self.devices[index]
        process = self.context.Process(
            target=worker_main,
            args=(theirs, name, device, self.threads, os.getpid()),
            name=f"dstbench-{name}",
            daemon=True,
        )
        process.start()
        theirs.close()  # the child holds its end; ours sees EOF when the child dies
        return _Worker(name, index, process, ours, device)

    def run(self, units: Sequence[list[Job]]) -> None:
        self.pending.extend(units)
        try:
            self.workers = [self.start(i) for i in range(len(self.devices))]
            while self.pending or any(w.jobs for w in self.workers):
                self.assign()
                wait(
                    [w.conn for w in self.workers] + [w.process.sentinel for w in self.workers],
                    timeout=1.0,
                )
                for worker in list(self.workers):
                    self.drain(worker)
                self.stop_overdue()
        except BaseException:
            self.stop()
            raise
        self.shutdown()

    def assign(self) -> None:
        for worker in self.workers:
            if not (worker.ready and not worker.jobs and self.pending):
                continue
            unit = self.pending.popleft()
            try:
                worker.conn.send(([job.to_dict() for job in unit], self.options.to_dict()))
            except OSError:  # it died just now; drain() replaces it
                self.pending.appendleft(unit)
                continue
            worker.jobs = list(unit)
            worker.job_started = time.monotonic()
            where = worker.name if worker.device == "cpu" else f"{worker.name}@{worker.device}"
            for job in unit:
                self.reporter.started(job.run_id, where)

    def drain(self, worker: _Worker) -> None:
        """Handle the worker's messages, then its death if it died."""
        try:
            while worker.conn.poll():
                self.handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the pipe closed: the process is gone or going
        if worker.process.is_alive():
            return
        worker.process.join()
        self.handle_death(worker)

    def handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "epoch":
            _, run_id, epoch, epochs = message
            self.reporter.progress(run_id, epoch, epochs)
        elif kind == "done":
            run_id = message[1]
            error = message[2] if len(message) > 2 else None
            worker.jobs = [job for job in worker.jobs if job.run_id != run_id]
            worker.job_started = time.monotonic()  # the others' time counts from now
            self.reporter.finished(run_id, error)
        elif kind == "interrupted":  # it checkpointed on a signal and is exiting
            run_id = message[1]
            worker.jobs = [job for job in worker.jobs if job.run_id != run_id]
            self.reporter.interrupted(run_id, f"worker {worker.name} was stopped; resumes")

    def stop_overdue(self) -> None:
        """Kill the workers whose runs are past the time limit.

        A group of K runs trained together gets K times the limit, counted from when it
        started or its last run finished (a group whose engine trains its runs one after
        another gives each the limit). A single run past its limit is failed; a group past
        its limit is split: each of its runs runs again alone, so that one run that never
        returns fails alone and its siblings finish.
        """
        limit = self.options.timeout
        if limit is None:
            return
        now = time.monotonic()
        for worker in list(self.workers):
            if not worker.jobs or now - worker.job_started <= limit * len(worker.jobs):
                continue
            jobs, worker.jobs = worker.jobs, []
            _kill(worker.process)
            worker.conn.close()
            self.workers.remove(worker)
            took = format_duration(now - worker.job_started)
            if len(jobs) > 1:
                for job in reversed(jobs):
                    self.pending.appendleft([job])
                    self.reporter.interrupted(
                        job.run_id,
                        f"its group of {len(jobs)} ran past {took} (the time limit is "
                        f"{format_duration(limit)} a run); each runs again alone",
                    )
            else:
                self.reporter.finished(
                    jobs[0].run_id,
                    f"timed out after {took} (the time limit is {format_duration(limit)}; a "
                    "stuck plugin or a slow setup?)",
                )
            if self.pending:
                self.workers.append(self.start(worker.index))

    def handle_death(self, worker: _Worker) -> None:
        code = worker.process.exitcode
        if worker.process.pid is not None:
            kill_group(worker.process.pid)  # what its runs started dies with it
        worker.conn.close()
        self.workers.remove(worker)
        if worker.jobs:
            jobs, worker.jobs = worker.jobs, []
            for job in jobs:
                self.reporter.finished(
                    job.run_id, f"worker {worker.name} died while running it ({_exit_text(code)})"
                )
        elif not worker.ready:
            killed = code is not None and code < 0
            self.startup_deaths += 1
            if killed and self.startup_deaths <= MAX_STARTUP_DEATHS:
                # Killed from outside (the OOM killer, a kill -9) before it was ready: not
                # the suite's fault; another worker takes its place.
                if self.pending or any(w.jobs for w in self.workers):
                    self.workers.append(self.start(worker.index))
                return
            if killed:
                msg = (
                    f"worker process {worker.name} was {_exit_text(code)} while starting, "
                    f"{self.startup_deaths} times; is something killing dstbench's processes "
                    "(memory limits, the OOM killer)?"
                )
            else:
                msg = (
                    f"worker process {worker.name} failed to start ({_exit_text(code)}); see "
                    "its error above. A script that runs suites must keep its top-level code "
                    "under `if __name__ == '__main__':` (workers are spawned and import the "
                    "main module)"
                )
            raise SuiteError(msg)
        if self.pending:
            self.workers.append(self.start(worker.index))

    def shutdown(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        self.stop()

    def stop(self) -> None:
        """Terminate every worker (SIGTERM, then SIGKILL after a grace period)."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if worker.process.pid is not None:
                kill_group(worker.process.pid)
            worker.conn.close()
        self.workers = []


def _kill(process: BaseProcess) -> None:
    """SIGTERM, then SIGKILL after the grace period; wait for it."""
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE_SECONDS)
    if process.is_alive():
        process.kill()
    process.join()
    if process.pid is not None:
        kill_group(process.pid)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- the worker side ---------------------------------------------------------------------


def worker_main(conn: Connection, name: str, device: str, threads: int, parent: int) -> None:
    """A worker process: set up once, then run the jobs the driver sends until told to stop."""
    # Ctrl-C reaches the whole process group; the driver decides what happens to workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(parent)
    lead_own_group()  # what plugins start is in this group, and reaped with it

    configure_threads(threads)
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
    get_plugins()  # load the plugins once, before the first job

    def send(message: tuple[Any, ...] | None) -> None:
        try:
            conn.send(message)
        except OSError:  # the driver is gone: nobody will read the record's fate
            os._exit(1)

    send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        jobs = [Job.from_dict(job) for job in message[0]]
        options = ExecutionOptions.from_dict(message[1])

        def progress(run_id: str, epoch: int, epochs: int) -> None:
            send(("epoch", run_id, epoch, epochs))

        done: set[str] = set()

        def finished(run_id: str, done: set[str] = done) -> None:
            done.add(run_id)
            send(("done", run_id))

        try:
            run_group(
                jobs, options, device=device, worker=name, progress=progress, finished=finished
            )
        except OutputError as exc:  # e.g. the disk is full: the driver records and reports it
            for job in jobs:
                if job.run_id not in done:
                    why = f"worker {name} could not write the record: {exc}"
                    send(("done", job.run_id, why))
        finally:
            reap_group()  # processes its plugins started end with the runs


def _watch_parent(parent: int) -> None:
    """Exit this process as soon as the driver that started it is gone (even by SIGKILL)."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="dstbench-parent-watch", daemon=True).start()
