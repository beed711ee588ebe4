"""Live progress of a suite: runs done/total, failures, ETA and the epoch of every running job.

On a terminal, one status line is redrawn in place under the list of finished runs. Anywhere
else (CI, a SLURM log, a pipe) the output is plain lines only: one per finished run, and a
status line at most every ``heartbeat`` seconds while runs are in progress.
"""

from __future__ import annotations

import shutil
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
    epoch: int = 0
    epochs: int = 0


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


class ProgressDisplay:
    """Receives the suite's events and shows them.

    :param total: runs in the suite's matrix.
    :param done: runs already finished before this invocation.
    :param to_run: runs this invocation executes.
    :param live: redraw a status line in place (default: when ``stream`` is a terminal).
    :param heartbeat: seconds between status lines in plain mode.
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.done = done
        self.to_run = to_run
        self.live = _isatty(stream) if live is None else live
        self.heartbeat = heartbeat
        self.clock = clock
        self.started_at = clock()
        self.last_status = self.started_at
        self.finished = 0
        self.failures = 0
        self.running: dict[str, _Running] = {}
        #: Runs waiting in a scheduler's queue.
        self.pending: set[str] = set()
        self._line_shown = False

    # --- events --------------------------------------------------------------------------

    def run_started(self, run_id: str, label: str, where: str) -> None:
        """A run started on ``where``."""
        self.running[run_id] = _Running(label, where)
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

    def run_progress(self, run_id: str, epoch: int, epochs: int) -> None:
        """A running run finished an epoch."""
        running = self.running.get(run_id)
        if running is not None:
            running.epoch, running.epochs = epoch, epochs
        self._refresh()

    def run_finished(self, run_id: str, label: str, record: dict[str, Any] | None) -> None:
        """A run ended; ``record`` is what it left in the store."""
        self.running.pop(run_id, None)
        self.pending.discard(run_id)
        self.finished += 1
        self.done += 1
        status = record["status"] if record else "failed"
        if status == "failed":
            self.failures += 1
        self._print(self._finished_line(label, record, status))

    def close(self) -> None:
        """Remove the live line (call once at the end)."""
        self._clear()
        self.stream.flush()

    # --- text ----------------------------------------------------------------------------

    def eta_seconds(self) -> float | None:
        """Remaining time, from this invocation's throughput (partial epochs count)."""
        progress = self.finished + sum(
            r.epoch / r.epochs for r in self.running.values() if r.epochs
        )
        if progress <= 0:
            return None
        elapsed = self.clock() - self.started_at
        return elapsed / progress * max(0.0, self.to_run - progress)

    def counts_text(self) -> str:
        """``12/80 done, 1 failed, 3 running, 40 pending, ETA 1m30s`` (pending and running
        when a scheduler queues the runs)."""
        parts = [f"{self.done}/{self.total} done"]
        if self.failures:
            parts.append(f"{self.failures} failed")
        if self.pending:
            parts.append(f"{len(self.running)} running")
            parts.append(f"{len(self.pending)} pending")
        eta = self.eta_seconds()
        if self.finished < self.to_run:
            parts.append(f"ETA {format_duration(eta)}" if eta is not None else "ETA ?")
        return ", ".join(parts)

    def status_text(self) -> str:
        """The counts and the epoch of every running job."""
        jobs = [
            f"{r.where}: {r.label} {r.epoch}/{r.epochs or '?'}"
            for r in sorted(self.running.values(), key=lambda r: r.where)
        ]
        return f"[{self.counts_text()}]" + (" " + " | ".join(jobs) if jobs else "")

    def _finished_line(self, label: str, record: dict[str, Any] | None, status: str) -> str:
        width = len(str(self.total))
        parts = [f"[{self.done:>{width}}/{self.total}] {status:<{_WIDTH}} {label}"]
        if record is not None:
            accuracy = (record.get("metrics") or {}).get("test_accuracy")
            if accuracy is not None:
                parts.append(f"test acc {100 * accuracy:.2f}")
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

    def _print(self, line: str) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        now = self.clock()
        if self.live:
            width = shutil.get_terminal_size((120, 20)).columns
            text = self.status_text()
            if len(text) > width - 1:
                text = text[: max(0, width - 2)] + "…"
            self.stream.write("\r\x1b[K" + text)
            self._line_shown = True
            self.stream.flush()
        elif self.running and now - self.last_status >= self.heartbeat:
            self.last_status = now
            self.stream.write(self.status_text() + "\n")
            self.stream.flush()
        elif force:
            self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._line_shown:
            self.stream.write("\r\x1b[K")
            self._line_shown = False


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
