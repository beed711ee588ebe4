"""Where a suite stands: every run's status from the store, the ledger and the scheduler.

``dstbench status`` shows, per setup, how many runs are done, running, pending (queued on a
scheduler), failed and still to run. A run whose record is final counts by its record; one
without a final record counts as running or pending while its job (from the ledger) is alive
on the scheduler, as failed when its job ended without a record (the next ``dstbench suite``
submits it again), as unknown when the scheduler cannot be asked (never as failed), and as to
run otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dstbench.errors import DstbenchError
from dstbench.registry import Registry
from dstbench.suite.executors import JobState, make_executor
from dstbench.suite.ledger import Ledger, LedgerEntry
from dstbench.suite.loader import Suite
from dstbench.suite.scheduler import never_clears, reason_hint
from dstbench.suite.store import MISSING, RunStore

#: The columns of the status table, in order.
COLUMNS = ("done", "running", "pending", "failed", "to run")
#: The column of runs whose scheduler could not be asked (shown only when there are some).
UNKNOWN = "unknown"


@dataclass
class RunState:
    """One run's place in the suite."""

    run_id: str
    setup: str
    #: One of :data:`COLUMNS`.
    column: str
    #: ``slurm 12_3: RUNNING``-style detail when a scheduler job is involved.
    job: str = ""


@dataclass
class SuiteStatus:
    """Every run's state and the scheduler's problems."""

    runs: list[RunState]
    #: Lines about jobs that ended without a record, or schedulers that could not be asked.
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> tuple[str, ...]:
        """:data:`COLUMNS`, and ``unknown`` when some run's scheduler could not be asked."""
        return (*COLUMNS, UNKNOWN) if any(r.column == UNKNOWN for r in self.runs) else COLUMNS

    def table(self) -> dict[str, dict[str, int]]:
        """setup -> column -> count."""
        table: dict[str, dict[str, int]] = {}
        for run in self.runs:
            row = table.setdefault(run.setup, dict.fromkeys(self.columns, 0))
            row[run.column] += 1
        return table


def _scheduler_states(
    entries: Sequence[LedgerEntry], registry: Registry, notes: list[str]
) -> dict[tuple[str, str], JobState]:
    states: dict[tuple[str, str], JobState] = {}
    for name in sorted({e.executor for e in entries}):
        ids = sorted({e.job_id for e in entries if e.executor == name})
        try:
            executor = make_executor({"name": name, "params": {}}, registry)
        except DstbenchError as exc:
            notes.append(f"cannot ask executor {name!r} about its jobs: {exc}")
            continue
        ask = getattr(executor, "job_states", None)
        if ask is None:
            continue
        for job_id, state in ask(ids).items():
            states[(name, job_id)] = state
    return states


def _waits_in_its_pack(run_id: str, entry: LedgerEntry, statuses: dict[str, str]) -> bool:
    """Whether an earlier run of ``run_id``'s pack has no final record yet: the task runs
    that one first, so this one waits."""
    for other in entry.pack:
        if other == run_id:
            return False
        if statuses.get(other, MISSING) in (MISSING, "failed"):
            return True
    return False


def _scheduler_notes(states: dict[tuple[str, str], JobState]) -> list[str]:
    """One line per executor that could not be asked, and per reason jobs are pending."""
    notes = []
    unknown: dict[str, list[JobState]] = {}
    pending: dict[tuple[str, str], int] = {}
    for (name, _), state in sorted(states.items()):
        if state.unknown:
            unknown.setdefault(name, []).append(state)
        elif state.phase == "pending" and state.reason:
            pending[(name, state.reason)] = pending.get((name, state.reason), 0) + 1
    for name, silent in unknown.items():
        notes.append(
            f"{name}: {silent[0].reason}: {len(silent)} job{'s' if len(silent) != 1 else ''} "
            "in an unknown state (not failed); ask again later"
        )
    for (name, reason), count in pending.items():
        never = " (never clears: cancel and change the executor's parameters)"
        notes.append(
            f"{name}: {count} job{'s' if count != 1 else ''} pending: {reason}"
            f"{reason_hint(reason)}{never if never_clears(reason) else ''}"
        )
    return notes


def suite_status(suite: Suite, store: RunStore, registry: Registry) -> SuiteStatus:
    """The state of every run of ``suite`` (see the module docstring)."""
    statuses = store.statuses(c.run_id for c in suite.cells)
    ledger = Ledger(store.root).load()
    notes: list[str] = []
    open_entries = [
        ledger[c.run_id]
        for c in suite.cells
        if c.run_id in ledger and statuses[c.run_id] in (MISSING, "failed")
    ]
    states = _scheduler_states(open_entries, registry, notes)
    packed = {r for e in open_entries for r in e.pack if r not in statuses}
    statuses.update(store.statuses(packed))
    notes.extend(_scheduler_notes(states))
    runs = []
    for cell in suite.cells:
        status = statuses[cell.run_id]
        if status in ("ok", "diverged"):
            runs.append(RunState(cell.run_id, cell.setup, "done"))
            continue
        if status == "invalid":
            runs.append(RunState(cell.run_id, cell.setup, "failed"))
            continue
        entry = ledger.get(cell.run_id)
        state = states.get((entry.executor, entry.job_id)) if entry else None
        job = f"{entry.executor} {entry.job_id}: {state.state}" if entry and state else ""
        if state is not None and state.alive:
            phase = state.phase
            if phase == "running" and entry and _waits_in_its_pack(cell.run_id, entry, statuses):
                phase = "pending"  # a pack runs its runs one after the other
            runs.append(RunState(cell.run_id, cell.setup, phase, job))
        elif state is not None and state.unknown:
            runs.append(RunState(cell.run_id, cell.setup, UNKNOWN, job))
        elif status == "failed":
            runs.append(RunState(cell.run_id, cell.setup, "failed", job))
        elif state is not None:
            why = f" ({state.reason})" if state.reason else ""
            notes.append(f"{cell.label}: {job}{why}, ended without a record; runs again")
            runs.append(RunState(cell.run_id, cell.setup, "failed", job))
        else:
            runs.append(RunState(cell.run_id, cell.setup, "to run"))
    return SuiteStatus(runs, notes)
