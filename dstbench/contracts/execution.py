"""What executors and engines see: jobs, execution options, the reporter, and their protocols.

An *executor* dispatches a suite's jobs (to local worker processes, a SLURM array, a Dask
cluster); an *engine* trains the runs a worker is given (one at a time, or a group together).
Both are components registered by plugins (``dstbench_register_executors``,
``dstbench_register_engines``); :mod:`dstbench.suite.executors` describes the executor
contract in full.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dstbench.contracts.record import RunRecord
from dstbench.contracts.spec import RunSpec

if TYPE_CHECKING:
    from dstbench.plugins import LoadedPlugins


@dataclass(frozen=True)
class Job:
    """One run to execute: its id, spec and where its record goes."""

    run_id: str
    spec: RunSpec
    #: Absolute path of the JSON record to write.
    record_path: str
    #: A short human label (``magnitude/gradient mlp/digits d=0.1 seed=0``).
    label: str
    #: The content digest of the record this job may replace (the record its run had when
    #: the driver planned it: a failed run's, or one asked to run again), or None when it had
    #: none. A worker that finds any other trusted record there leaves it and trains nothing:
    #: the run finished elsewhere (a copy of its task, recomputed after a worker died).
    replaces: str | None = None

    def __post_init__(self) -> None:
        # A spec's JSON form (what suites and job files hold) is accepted and typed here.
        spec: Any = self.spec  # untyped callers (and job files) pass the JSON form
        if not isinstance(spec, RunSpec):
            object.__setattr__(self, "spec", RunSpec.from_json(spec))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a cluster executor ships to the machine that runs it)."""
        return {
            "run_id": self.run_id,
            "spec": self.spec.to_json(),
            "record_path": self.record_path,
            "label": self.label,
            "replaces": self.replaces,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`."""
        return cls(
            run_id=str(data["run_id"]),
            spec=RunSpec.from_json(data["spec"]),
            record_path=str(data["record_path"]),
            label=str(data.get("label", data["run_id"])),
            replaces=data.get("replaces"),
        )


@dataclass(frozen=True)
class ExecutionOptions:
    """How to execute runs, whatever the executor."""

    #: Parallel workers (jobs running at once).
    workers: int
    #: ``auto``, ``cpu``, ``cuda`` (GPUs shared round-robin) or ``cuda:N``.
    device: str = "auto"
    #: Data directory (None: ``$DSTBENCH_DATA`` or the user cache).
    data_root: str | None = None
    #: Whether datasets may download missing files.
    download: bool = False
    #: Runs' artifact directories go under this one (``<artifact_root>/<run_id>``), or None.
    artifact_root: str | None = None
    #: Name of the executor (recorded with every run, with ``workers``).
    executor: str = "local"
    #: Seconds a run may take; the executor stops a run past it and reports it as failed
    #: with ``timed out after ...`` (None: no limit).
    timeout: float | None = None
    #: The suite's results directory (where a scheduler executor keeps its ledger and logs).
    output: str | None = None
    #: Submit and return without waiting (executors that queue jobs on a scheduler).
    detach: bool = False
    #: Default in-run checkpoint period in epochs for runs whose spec leaves it unset: 0 never,
    #: None the engine's default (checkpoint long runs only).
    checkpoint_every: int | None = None
    #: The training engine: ``single`` (one run at a time) or ``batched`` (compatible runs
    #: trained together, see :mod:`dstbench.batched`).
    engine: str = "single"
    #: Runs per batched group (0: automatic, see :func:`dstbench.batched.grouping.auto_group`).
    group: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutionOptions:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


@runtime_checkable
class Reporter(Protocol):
    """What an executor tells the suite while it works (called from the executor's thread)."""

    def started(self, run_id: str, where: str) -> None:
        """Job ``run_id`` started on ``where`` (a worker name, host, or cluster job id)."""

    def progress(self, run_id: str, epoch: int, epochs: int) -> None:
        """Job ``run_id`` finished epoch ``epoch`` of ``epochs``."""

    def finished(self, run_id: str, error: str | None = None, log: str | None = None) -> None:
        """Job ``run_id`` is over; ``error`` says why when its process died without a record
        (``log``: the tail of its log, kept in the failure record)."""

    def queued(self, run_id: str, where: str) -> None:
        """Job ``run_id`` waits in a scheduler's queue as ``where`` (e.g. ``slurm 1234_5``)."""

    def interrupted(self, run_id: str, why: str) -> None:
        """Job ``run_id`` stopped early and checkpointed; it resumes on its next attempt."""

    def note(self, line: str) -> None:
        """Tell the user something about the runs as a whole (one line), e.g. that the
        scheduler does not answer or why jobs wait."""


@dataclass(frozen=True)
class JobState:
    """What a scheduler says about one job: ``pending``, ``running`` or ``ended``, or
    ``unknown`` when the scheduler could not be asked."""

    phase: str
    #: The scheduler's own word (``PENDING``, ``TIMEOUT``, ``CANCELLED by 0``, ...).
    state: str = ""
    #: Why, when the scheduler says (``Resources``, ``BeginTime``, an exit code, ...).
    reason: str = ""

    @property
    def alive(self) -> bool:
        """Pending or running: the job may still write its records."""
        return self.phase in ("pending", "running")

    @property
    def unknown(self) -> bool:
        """The scheduler could not be asked: the job may be anywhere, ended included."""
        return self.phase == "unknown"


@runtime_checkable
class Executor(Protocol):
    """Runs jobs and reports on them. Created by the registered factory with its params."""

    def run(self, jobs: Sequence[Job], options: ExecutionOptions, reporter: Reporter) -> None:
        """Run every job (see the module docstring for the contract)."""


#: ``progress(epoch, epochs)``: a run finished epoch ``epoch`` of ``epochs``.
EpochProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunRequest:
    """One run an engine is asked to train, and what it may use while doing it."""

    spec: RunSpec
    #: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    device: str = "cpu"
    #: A directory observers may write into, or None.
    artifact_dir: Path | None = None
    #: Called after every epoch of this run.
    progress: EpochProgress | None = None
    #: Where this run keeps its in-run checkpoint (None: no checkpoints).
    checkpoint: Path | None = None


@runtime_checkable
class Engine(Protocol):
    """Trains runs in the process it is called in. Created by the registered factory."""

    def groups(self, jobs: Sequence[Job], size: int, workers: int = 1) -> list[list[Job]]:
        """Split ``jobs`` into the groups this engine trains together (``size`` runs at most;
        0: the engine chooses for ``workers`` parallel workers). The single engine returns one
        group per job."""
        ...

    def run(
        self, requests: Sequence[RunRequest], options: ExecutionOptions, plugins: LoadedPlugins
    ) -> Iterator[RunRecord]:
        """Train ``requests`` (one group) and yield each run's record, in order, as soon as it
        is complete. Never raises for a failing run: its record says ``failed``."""
        ...
