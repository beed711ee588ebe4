"""Stopping a run cleanly: a signal asks, the training loop checkpoints and stops.

A scheduler that preempts a job or reaches its time limit sends SIGTERM (SLURM also sends
the signal submitit asks for, SIGUSR2, shortly before the limit); a user may send SIGUSR1.
:func:`stop_on_signals` turns those signals into a flag; the training loop looks at the flag
after every iteration, writes its checkpoint and raises :class:`RunInterrupted`. The worker
then exits with :data:`INTERRUPTED_EXIT`, which executors read as "interrupted, resume me"
rather than "failed".
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

#: Exit status of a worker whose run stopped on request and left a checkpoint (EX_TEMPFAIL).
INTERRUPTED_EXIT = 75
#: The ``run_job`` status of such a run (never written as a record).
INTERRUPTED = "interrupted"
#: Signals that ask a run to checkpoint and stop.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)


class RunInterrupted(BaseException):
    """A run stopped on request after writing its checkpoint.

    A ``BaseException`` so that the engine's ``except Exception`` (which records failures)
    lets it through: an interrupted run has no record yet.
    """

    def __init__(self, epoch: int, step: int, checkpoint: str | None) -> None:
        super().__init__(f"stopped at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
        self.checkpoint = checkpoint


class _StopFlag:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def set(self, signum: int | None = None) -> None:
        self.signum = signum
        self.event.set()

    def clear(self) -> None:
        self.signum = None
        self.event.clear()


_FLAG = _StopFlag()


def stop_requested() -> bool:
    """Whether this process was asked to stop its run (checked once per iteration)."""
    return _FLAG.event.is_set()


def stop_signal() -> int | None:
    """The signal that asked to stop, if one did."""
    return _FLAG.signum


def request_stop(signum: int | None = None) -> None:
    """Ask the running run to checkpoint and stop (what the signal handlers do)."""
    _FLAG.set(signum)


def clear_stop() -> None:
    """Forget an earlier request (before the next run of a packed job)."""
    _FLAG.clear()


@contextmanager
def stop_on_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[dict[int, Any]]:
    """While inside, ``signals`` set the stop flag instead of their usual effect.

    Yields the handlers they replace (signal -> handler), so that a caller can hand the
    signal on once the run has checkpointed. Outside the main thread (where Python cannot
    install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        request_stop(signum)

    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield previous
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
