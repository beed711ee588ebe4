"""Live progress of a suite: a bar with elapsed time, rate and ETA, and each running job.

On a terminal the display is drawn with `rich <https://rich.readthedocs.io>`_: finished runs
scroll above a bar (runs done/total, elapsed, runs per hour, ETA) and one line per running
job with its worker, its label (with the keys the suite sweeps, so that the runs of a ΔT sweep
are told apart), its epoch and how long it has been running, so a stalled job is visible.
Anywhere else (CI, a SLURM log, a pipe) the output is plain lines only: one per finished run,
and a status line at most every ``heartbeat`` seconds while runs are in progress.

The ETA comes from run times measured from each run's start (worker start-up and data loading
before the first run are not counted as progress time): the mean duration of the runs
finished so far, or while none has finished, the running runs' epochs per second.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

#: Status words, padded to one width in the finished-run lines.
_WIDTH = 8


@dataclass
class _Running:
    label: str
    where: str
    started: float
    epoch: int = 0
    epochs: int = 0

    def fraction(self) -> float:
        return self.epoch / self.epochs if self.epochs else 0.0


#: Running jobs named on a heartbeat line; the others are counted.
HEARTBEAT_JOBS = 3


def format_duration(seconds: float) -> str:
    """``0.4s``, ``42s``, ``3m05s``, ``2h07m``."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def accuracy_text(metrics: dict[str, Any] | None) -> str | None:
    """``test acc 97.53 (best-val epoch 96.66)``: accuracies in %, as in the leaderboard.

    ``dstbench run`` and ``dstbench suite`` print a run's accuracy with this one function.
    """
    metrics = metrics or {}
    accuracy = metrics.get("test_accuracy")
    if not isinstance(accuracy, (int, float)):
        return None
    text = f"test acc {100 * accuracy:.2f}"
    best = metrics.get("best_val_test_accuracy")
    if isinstance(best, (int, float)):
        text += f" (best-val epoch {100 * best:.2f})"
    return text


class ProgressDisplay:
    """Receives the suite's events and shows them.

    :param total: runs in the suite's matrix.
    :param done: runs already finished before this invocation.
    :param to_run: runs this invocation executes.
    :param live: draw the live display (default: when ``stream`` is a terminal).
    :param heartbeat: seconds between status lines in plain mode.
    :param workers: runs executing at once (the ETA divides the remaining work by it).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int,
        done: int,
        to_run: int,
        live: bool | None = None,
        heartbeat: float = 60.0,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.done = done
        self.to_run = to_run
        self.live = _isatty(stream) if live is None else live
        self.heartbeat = heartbeat
        self.workers = max(1, workers)
        self.clock = clock
        self.started_at = clock()
        self.first_start: float | None = None
        self.last_status = self.started_at
        self.finished = 0
        self.failures = 0
        self.durations: list[float] = []
        self.running: dict[str, _Running] = {}
        #: Runs waiting in a scheduler's queue.
        self.pending: set[str] = set()
        self._lock = threading.RLock()  # rich redraws from its own thread
        self._live: Any = None
        if self.live:
            self._start_live()

    # --- events --------------------------------------------------------------------------

    def run_started(self, run_id: str, label: str, where: str) -> None:
        """A run started on ``where``."""
        with self._lock:
            now = self.clock()
            if self.first_start is None:
                self.first_start = now
            self.running[run_id] = _Running(label, where, now)
            self.pending.discard(run_id)
        self._refresh()

    def run_queued(self, run_id: str) -> None:
        """A run waits in a scheduler's queue."""
        self.pending.add(run_id)
        self._refresh()

    def run_interrupted(self, run_id: str, label: str, why: str) -> None:
        """A run stopped early and checkpointed; it stays to run (and resumes)."""
        self.running.pop(run_id, None)
        self.pending.discard(run_id)
        self._print(f"{'':>{2 * len(str(self.total)) + 3}} {'stopped':<{_WIDTH}} {label} | {why}")

    def note(self, line: str) -> None:
        """A line about the suite as a whole (the scheduler does not answer, jobs wait)."""
        self._print(line)

    def run_progress(self, run_id: str, epoch: int, epochs: int) -> None:
        """A running run finished an epoch."""
        with self._lock:
            running = self.running.get(run_id)
            if running is not None:
                running.epoch, running.epochs = epoch, epochs
        self._refresh()

    def run_finished(self, run_id: str, label: str, record: dict[str, Any] | None) -> None:
        """A run ended; ``record`` is what it left in the store."""
        with self._lock:
            running = self.running.pop(run_id, None)
            self.pending.discard(run_id)
            if running is not None:
                self.durations.append(self.clock() - running.started)
            self.finished += 1
            self.done += 1
            status = record["status"] if record else "failed"
            if status == "failed":
                self.failures += 1
            line = self._finished_line(label, record, status)
        self._print(line)

    def close(self) -> None:
        """Stop the live display (call once at the end)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.stream.flush()

    # --- numbers -------------------------------------------------------------------------

    def eta_seconds(self) -> float | None:
        """Remaining time, from run times (see the module docstring); None while unknown."""
        with self._lock:
            remaining = self.to_run - self.finished
            if remaining <= 0:
                return 0.0
            now = self.clock()
            # A batched worker trains a whole group at once: as many run as are running.
            parallel = min(max(self.workers, len(self.running)), remaining)
            if self.durations:
                per_run = sum(self.durations) / len(self.durations)
            else:  # extrapolate the running runs' epochs
                rates = [
                    (now - r.started) / r.fraction() for r in self.running.values() if r.fraction()
                ]
                if not rates:
                    return None
                per_run = sum(rates) / len(rates)
            left_in_running = sum(
                max(0.0, per_run - (now - r.started)) for r in self.running.values()
            )
            waiting = remaining - len(self.running)
            return (left_in_running + max(0, waiting) * per_run) / parallel

    def rate_per_hour(self) -> float | None:
        """Runs finished per hour since the first run started."""
        with self._lock:
            if self.first_start is None or not self.finished:
                return None
            elapsed = self.clock() - self.first_start
            return 3600.0 * self.finished / elapsed if elapsed > 0 else None

    # --- text ----------------------------------------------------------------------------

    def counts_text(self) -> str:
        """``12/80 done, 1 failed, 3 running, 40 pending, 40/h, ETA 1m30s`` (running and
        pending when a scheduler queues the runs)."""
        parts = [f"{self.done}/{self.total} done"]
        if self.failures:
            parts.append(f"{self.failures} failed")
        if self.pending:
            parts.append(f"{len(self.running)} running")
            parts.append(f"{len(self.pending)} pending")
        rate = self.rate_per_hour()
        if rate is not None:
            parts.append(f"{rate:.3g}/h")
        if self.finished < self.to_run:
            eta = self.eta_seconds()
            parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA ?")
        return ", ".join(parts)

    def job_lines(self) -> list[str]:
        """One line per running job: where, label, epoch (when its executor reports epochs),
        running time."""
        now = self.clock()
        with self._lock:
            jobs = sorted(self.running.values(), key=lambda r: r.where)
            return [
                f"{r.where}: {r.label}"
                + (f" epoch {r.epoch}/{r.epochs}" if r.epochs else "")
                + f", running {format_duration(now - r.started)}"
                for r in jobs
            ]

    def status_text(self) -> str:
        """The counts and the first running jobs, on one short line (plain mode's heartbeat):
        a batched group of dozens of runs is ``(+N more)``, not a line of thousands of
        characters."""
        jobs = self.job_lines()
        shown = jobs[:HEARTBEAT_JOBS]
        more = f" (+{len(jobs) - len(shown)} more)" if len(jobs) > len(shown) else ""
        return f"[{self.counts_text()}]" + (" " + " | ".join(shown) + more if jobs else "")

    def _finished_line(self, label: str, record: dict[str, Any] | None, status: str) -> str:
        width = len(str(self.total))
        parts = [f"[{self.done:>{width}}/{self.total}] {status:<{_WIDTH}} {label}"]
        if record is not None:
            accuracy = accuracy_text(record.get("metrics"))
            if accuracy is not None:
                parts.append(accuracy)
            seconds = (record.get("timings") or {}).get("total_seconds")
            if seconds is not None:
                parts.append(format_duration(seconds))
            if status in ("diverged", "invalid") and record.get("reason"):
                parts.append(str(record["reason"]))
            if status == "failed" and record.get("error"):
                error = record["error"]
                parts.append(f"{error.get('type')}: {error.get('message')}")
        return " | ".join(parts)

    # --- output --------------------------------------------------------------------------

    def _start_live(self) -> None:
        from rich.console import Console, Group
        from rich.live import Live
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        from rich.text import Text

        width = shutil.get_terminal_size((120, 20)).columns
        console = Console(file=self.stream, force_terminal=True, width=width, highlight=False)
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            auto_refresh=False,
        )
        task = bar.add_task("runs", total=max(self.total, 1), completed=self.done, counts="")
        display = self

        class _View:
            def __rich__(self) -> Group:
                with display._lock:
                    elapsed = format_duration(display.clock() - display.started_at)
                    bar.update(
                        task,
                        completed=display.done,
                        counts=f"elapsed {elapsed}, {display.counts_text()}",
                    )
                    jobs = [
                        Text("  " + line, overflow="ellipsis", no_wrap=True)
                        for line in display.job_lines()
                    ]
                return Group(bar, *jobs)

        self._live = Live(
            _View(), console=console, refresh_per_second=2, transient=True, redirect_stdout=False
        )
        self._live.start()

    def _print(self, line: str) -> None:
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        self.stream.write(line + "\n")
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        if self._live is not None:
            self._live.refresh()
            return
        now = self.clock()
        if self.running and now - self.last_status >= self.heartbeat:
            self.last_status = now
            self.stream.write(self.status_text() + "\n")
            self.stream.flush()
        elif force:
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
