"""Running a suite: what is left to do, dispatch to the executor, summary and leaderboard.

Resume is the store's job: a run whose record says ``ok`` (or ``diverged``/``invalid``, which
are results, not accidents) is skipped; a ``failed`` or missing one runs. So re-running the same
command after any interruption finishes the rest, and nothing finished is ever run twice.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from dstbench.contracts.spec import RunSpec
from dstbench.errors import DataError, SuiteError
from dstbench.plugins import get_plugins
from dstbench.preflight import check_data, check_device, check_output_dir, dataset_references
from dstbench.registry import Registry
from dstbench.suite.executors import ExecutionOptions, Job, available_cpus, make_executor
from dstbench.suite.loader import Cell, Suite
from dstbench.suite.progress import ProgressDisplay, format_duration
from dstbench.suite.store import MISSING, RunStore
from dstbench.suite.worker import failure_record

#: Statuses that always run again.
ALWAYS_RUN = (MISSING, "failed")
#: Statuses that may be asked to run again (``--retry``).
RETRYABLE = ("diverged", "invalid")
#: How each store status reads in the run matrix.
STATUS_WORDS = {
    "ok": "done",
    "failed": "failed",
    "diverged": "diverged",
    "invalid": "invalid",
    MISSING: "to run",
}
#: Final statuses that make ``dstbench suite`` exit with status 1.
BAD_STATUSES = ("failed", "invalid")


@dataclass(frozen=True)
class PlannedRun:
    """A cell with its status in the store and whether this invocation runs it."""

    cell: Cell
    status: str
    will_run: bool


def plan(suite: Suite, store: RunStore, retry: Sequence[str] = ()) -> list[PlannedRun]:
    """Every cell of ``suite`` with its store status; missing and failed runs (and those
    whose status is in ``retry``) run."""
    statuses = store.statuses(c.run_id for c in suite.cells)
    rerun = {*ALWAYS_RUN, *retry}
    return [
        PlannedRun(cell, statuses[cell.run_id], statuses[cell.run_id] in rerun)
        for cell in suite.cells
    ]


def default_workers(device: str) -> int:
    """Workers when neither ``-j`` nor the suite says: one per GPU on CUDA, else per CPU."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return max(1, torch.cuda.device_count())
    elif device.startswith("cuda"):
        return 1  # one named GPU
    return available_cpus()


@dataclass
class SuiteOutcome:
    """What a suite invocation did and where the matrix stands afterwards."""

    suite: Suite
    output: Path
    #: run id -> status in the store after this invocation.
    statuses: dict[str, str]
    #: Runs this invocation executed (or started, when interrupted).
    ran: int
    workers: int
    seconds: float
    #: The executor's name (the summary says where the runs went).
    executor: str = "local"
    interrupted: bool = False
    #: Runs handed to a scheduler and left there (``--detach``); None when not detached.
    detached: int | None = None
    leaderboard: Path | None = None
    #: Lines of the failures, for the summary.
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Status -> number of runs (store statuses, ``missing`` for not yet run)."""
        counts: dict[str, int] = {}
        for status in self.statuses.values():
            counts[status] = counts.get(status, 0) + 1
        return counts

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 1 when a run failed or broke the sparsity checks, else 0."""
        if self.interrupted:
            return 130
        return 1 if any(s in BAD_STATUSES for s in self.statuses.values()) else 0


def counts_text(counts: dict[str, int]) -> str:
    """``78 done, 1 failed, 1 to run`` in a fixed order."""
    order = ["ok", "failed", "diverged", "invalid", MISSING]
    return ", ".join(f"{counts[s]} {STATUS_WORDS[s]}" for s in order if counts.get(s))


class _Reporter:
    """Bridges executor events to the store (failure records) and the display."""

    def __init__(self, store: RunStore, cells: dict[str, Cell], display: ProgressDisplay) -> None:
        self.store = store
        self.cells = cells
        self.display = display
        # With a single setup its name says nothing: leave it out of the live status line.
        self.single_setup = len({c.setup for c in cells.values()}) == 1
        self.lock = threading.Lock()  # executors may report from several threads
        self.ran = 0
        self.started_ids: set[str] = set()
        self.queued_runs = 0

    def started(self, run_id: str, where: str) -> None:
        with self.lock:
            if run_id not in self.started_ids:  # a run restarted elsewhere counts once
                self.started_ids.add(run_id)
                self.ran += 1
            cell = self.cells[run_id]
            label = cell.label.replace(f" {cell.setup} ", " ") if self.single_setup else cell.label
            self.display.run_started(run_id, label, where)

    def progress(self, run_id: str, epoch: int, epochs: int) -> None:
        with self.lock:
            self.display.run_progress(run_id, epoch, epochs)

    def queued(self, run_id: str, where: str) -> None:
        with self.lock:
            self.queued_runs += 1
            self.display.run_queued(run_id)

    def interrupted(self, run_id: str, why: str) -> None:
        with self.lock:
            self.display.run_interrupted(run_id, self.cells[run_id].label, why)

    def note(self, line: str) -> None:
        with self.lock:
            self.display.note(line)

    def finished(self, run_id: str, error: str | None = None, log: str | None = None) -> None:
        with self.lock:
            cell = self.cells[run_id]
            record = self.store.load(run_id)
            # A worker that dies right after writing its result (ok, diverged, invalid) does
            # not turn that result into a failure: only a missing or failed record is replaced.
            if error is not None and (record is None or record["status"] == "failed"):
                record = failure_record(cell.spec, run_id, error)
                if log:
                    record["error"]["log_tail"] = log
                self.store.write(record)
            elif record is None:
                record = failure_record(cell.spec, run_id, "the run ended without a record")
                self.store.write(record)
            self.display.run_finished(run_id, cell.label, record)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, ``scancel``) stops the suite like Ctrl-C: workers stopped cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Executors that run on machines that may be preempted: they checkpoint every epoch unless
#: told otherwise.
CLUSTER_EXECUTORS = ("slurm", "dask")


def checkpoint_every(value: int | None, executor: str) -> int | None:
    """The checkpoint period runs get: ``value``, else every epoch on a cluster executor, else
    None (the engine's default: by training time)."""
    if value is not None:
        return value
    return 1 if executor in CLUSTER_EXECUTORS else None


def run_suite(
    suite: Suite,
    *,
    output: str | Path | None = None,
    workers: int | None = None,
    device: str = "auto",
    data_root: str | None = None,
    download: bool = False,
    executor: dict[str, Any] | None = None,
    engine: str | None = None,
    group: int | None = None,
    checkpoint: int | None = None,
    retry: Sequence[str] = (),
    timeout: float | None = None,
    detach: bool = False,
    stream: TextIO | None = None,
    live: bool | None = None,
    heartbeat: float = 60.0,
    publish: Callable[[Path], Path | None] | None = None,
    registry: Registry | None = None,
) -> SuiteOutcome:
    """Run what is left of ``suite``'s matrix.

    :param output: results directory (default ``results/<suite name>``).
    :param workers: parallel runs (default: the suite's ``jobs``, else one per CPU, or one
        per GPU on CUDA).
    :param executor: ``{"name", "params"}`` overriding the suite's executor.
    :param engine: ``single`` or ``batched``, overriding the suite's ``engine``.
    :param checkpoint: epochs between in-run checkpoints (0 never), overriding the suite's
        ``checkpoint_every``.
    :param group: runs per batched group (0: automatic), overriding the suite's ``group``.
    :param retry: statuses among ``diverged``/``invalid`` to run again as well.
    :param data_root: data directory (default: the suite's ``data_root``, then the defaults).
    :param download: let datasets download (also when the suite says ``download = true``).
    :param timeout: seconds a run may take before it is stopped and recorded as failed
        (default: the suite's ``timeout``; None: no limit).
    :raises DstbenchError: before anything is written, when the device is unusable, a
        dataset's files are missing (one line per dataset), or the results directory cannot
        be written.
    :param detach: submit the runs and return (executors that queue them on a scheduler).
    :param stream: where progress goes (default stderr); ``live`` forces the live line on/off.
    :param publish: called with the results directory once the runs are over, when any run
        has a record (``dstbench suite`` writes the leaderboard with it); its return value is
        the outcome's ``leaderboard``. A failure is reported and the runs stay safe.
    :returns: the outcome; its ``exit_code`` is what ``dstbench suite`` exits with.

    Workers are spawned processes that import the caller's main module, so a script calling
    this must keep its top-level code under ``if __name__ == "__main__":``.
    """
    stream = stream or sys.stderr
    registry = registry or get_plugins().registry
    store = RunStore(output if output is not None else suite.default_output())
    data_root = data_root if data_root is not None else suite.data_root
    download = download or suite.download
    timeout = timeout if timeout is not None else suite.timeout
    started = time.monotonic()
    # Fail fast, once: what would fail every run fails the suite before anything is written.
    check_device(device)
    if store.root.exists() and not store.root.is_dir():
        raise SuiteError(f"{store.root}: exists and is not a directory; expected a results folder")
    statuses_now = store.statuses(c.run_id for c in suite.cells)
    data_problems = [
        check.problem
        for check in check_data(
            dataset_references(
                c.spec for c in suite.cells if statuses_now[c.run_id] in (*ALWAYS_RUN, *retry)
            ),
            registry,
            data_root=data_root,
            download=download,
        )
        if check.problem
    ]
    if data_problems:
        raise DataError("\n".join(data_problems))
    # The executor's parameters are checked before anything is written.
    runner = _make_runner(suite, executor, registry)
    if detach and not callable(getattr(runner, "job_states", None)):
        name = (executor or suite.executor)["name"]
        msg = (
            f"--detach: executor {name!r} runs the suite in this process; detach needs "
            "one that queues runs on a scheduler (slurm)"
        )
        raise SuiteError(msg)
    fresh = not store.root.exists()
    check_output_dir(store.root)
    try:
        return _run_locked(
            suite, store, runner, workers=workers, device=device,
            data_root=data_root, download=download, executor=executor, engine=engine,
            group=group, checkpoint=checkpoint, retry=retry, timeout=timeout, detach=detach,
            stream=stream, live=live, heartbeat=heartbeat, publish=publish, started=started,
        )  # fmt: skip
    except SuiteError:
        # A refusal (the scheduler would not take the runs): a results folder that this
        # invocation made and that holds no result and no job is not left behind.
        if fresh:
            store.remove_if_unused()
        raise


def _make_runner(suite: Suite, executor: dict[str, Any] | None, registry: Registry) -> Any:
    """The executor, its parameters checked; errors name where it was chosen."""
    try:
        return make_executor(executor or suite.executor, registry)
    except SuiteError as exc:
        where = "--executor" if executor is not None else str(suite.path)
        message = str(exc)
        if not message.startswith("executor"):
            message = f"executor: {message}"
        raise SuiteError(f"{where}: {message}") from None


def _run_locked(
    suite: Suite,
    store: RunStore,
    runner: Any,
    *,
    workers: int | None,
    device: str,
    data_root: str | None,
    download: bool,
    executor: dict[str, Any] | None,
    engine: str | None,
    group: int | None,
    checkpoint: int | None,
    retry: Sequence[str],
    timeout: float | None,
    detach: bool,
    stream: TextIO,
    live: bool | None,
    heartbeat: float,
    publish: Callable[[Path], Path | None] | None,
    started: float,
) -> SuiteOutcome:
    """:func:`run_suite` once its checks passed: under the store's lock, run what is left."""
    with store.lock():
        store.clean_temporaries()
        for line in store.quarantine_untrusted():
            stream.write(f"dstbench: warning: {line}\n")
        store.write_manifest(
            suite.name,
            suite.description,
            str(suite.path),
            [{"run_id": c.run_id, "spec": c.spec} for c in suite.cells],
        )
        if suite.text:
            store.write_suite_copy(suite.text)
        planned = plan(suite, store, retry)
        todo = [p.cell for p in planned if p.will_run]
        count = workers or suite.jobs or default_workers(device)
        count = max(1, min(count, len(todo))) if todo else max(1, count)
        options = ExecutionOptions(
            workers=count,
            device=device,
            data_root=data_root,
            download=download,
            artifact_root=str((store.root / "artifacts").resolve()),
            executor=str((executor or suite.executor)["name"]),
            timeout=timeout,
            output=str(store.root.resolve()),
            detach=detach,
            engine=engine or suite.engine,
            group=suite.group if group is None else group,
            checkpoint_every=checkpoint_every(
                suite.checkpoint_every if checkpoint is None else checkpoint,
                str((executor or suite.executor)["name"]),
            ),
        )
        jobs = [
            Job(
                c.run_id,
                RunSpec.from_json(c.spec),
                str(store.root.resolve() / "runs" / f"{c.run_id}.json"),
                c.label,
                replaces=store.digest(c.run_id),
            )
            for c in todo
        ]
        display = ProgressDisplay(
            stream,
            total=len(planned),
            done=len(planned) - len(todo),
            to_run=len(todo),
            live=live,
            heartbeat=heartbeat,
            workers=count,
        )
        finished = len(planned) - len(todo)
        plural = "s" if count != 1 else ""
        chosen = executor or suite.executor
        # Where a scheduler decides how many run at once, -j means nothing: say where.
        elsewhere = chosen["name"] == "slurm" or (
            chosen["name"] == "dask" and (chosen.get("params") or {}).get("address")
        )
        how = f"on {chosen['name']}" if elsewhere else f"with {count} worker{plural}"
        doing = f"{len(todo)} to run {how}" if todo else "nothing to run"
        stream.write(
            f"suite {suite.name}: {len(planned)} runs, {finished} already finished, {doing}"
            f" -> {store.root}\n"
        )
        stream.flush()
        reporter = _Reporter(store, {c.run_id: c for c in suite.cells}, display)
        interrupted = False
        try:
            with _sigterm_as_interrupt():
                runner.run(jobs, options, reporter)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            display.close()
        store.clean_temporaries()
        with contextlib.suppress(OSError):  # the workers leave it if an observer wrote in it
            (store.root / "artifacts").rmdir()
        statuses = store.statuses(c.run_id for c in suite.cells)
        outcome = SuiteOutcome(
            suite=suite,
            output=store.root,
            statuses=statuses,
            ran=reporter.ran,
            workers=count,
            executor=str((executor or suite.executor)["name"]),
            seconds=time.monotonic() - started,
            interrupted=interrupted,
            detached=reporter.queued_runs if detach and not interrupted else None,
            problems=_problem_lines(store, suite.cells, statuses),
        )
        if publish is not None and any(s != MISSING for s in statuses.values()):
            try:
                outcome.leaderboard = publish(store.root)
            except Exception:  # the runs are safe; report the leaderboard bug and go on
                stream.write("dstbench: warning: the leaderboard could not be written:\n")
                stream.write(traceback.format_exc())
    return outcome


def _problem_lines(store: RunStore, cells: Sequence[Cell], statuses: dict[str, str]) -> list[str]:
    lines = []
    for cell in cells:
        status = statuses[cell.run_id]
        if status not in ("failed", "diverged", "invalid"):
            continue
        record = store.load(cell.run_id) or {}
        if status == "failed":
            error = record.get("error") or {}
            why = f"{error.get('type', 'error')}: {error.get('message', '')}"
        else:
            why = str(record.get("reason", ""))
        lines.append(f"{status:<8} {cell.label}: {why} ({store.record_path(cell.run_id)})")
    return lines


def summary_lines(outcome: SuiteOutcome) -> list[str]:
    """The end-of-suite summary."""
    counts = outcome.counts()
    head = (
        f"suite {outcome.suite.name}: {len(outcome.statuses)} runs: {counts_text(counts)}"
        f" | ran {outcome.ran} in {format_duration(outcome.seconds)}"
        + (
            f" on {outcome.executor}"  # the scheduler decides how many run at once
            if outcome.executor in CLUSTER_EXECUTORS
            else f" with {outcome.workers} worker{'s' if outcome.workers != 1 else ''}"
        )
    )
    lines = [head, *outcome.problems]
    if outcome.detached is not None:
        lines.append(
            f"detached: {outcome.detached} runs queued on the scheduler; follow them with "
            f"`dstbench status {outcome.suite.path}`, collect with `dstbench suite` again"
        )
    if outcome.interrupted:
        lines.append(
            "interrupted: finished runs are saved; run the same command again to do the rest"
        )
    elif counts.get("failed"):
        lines.append("failed runs run again when the same command is run again")
    if outcome.leaderboard is not None:
        lines.append(f"leaderboard: {outcome.leaderboard}")
    return lines
