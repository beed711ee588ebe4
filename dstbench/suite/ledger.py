"""The job ledger: which scheduler job holds which run, in ``<results>/jobs.json``.

Executors that hand runs to a scheduler (SLURM) write an entry per run when they submit it.
A later ``dstbench suite`` or ``dstbench status`` reads the ledger and asks the scheduler about
the jobs: a run whose job is still pending or running is not submitted again; one whose job
ended without leaving a record is. The result store stays the source of truth for what is
done; the ledger only says where unfinished runs are.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dstbench.io import read_json, write_json_atomic

LEDGER = "jobs.json"


@dataclass(frozen=True)
class LedgerEntry:
    """One run's latest submission."""

    executor: str
    job_id: str
    #: Unix time of the submission.
    submitted: float
    #: The other runs packed into the same job (in the order the job runs them).
    pack: tuple[str, ...] = ()


class Ledger:
    """The ledger of the results directory ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = Path(root) / LEDGER

    def load(self) -> dict[str, LedgerEntry]:
        """run id -> its latest submission (empty when there is no readable ledger)."""
        try:
            data = read_json(self.path)
        except (OSError, ValueError):
            return {}
        runs = data.get("runs") if isinstance(data, dict) else None
        if not isinstance(runs, dict):
            return {}
        entries = {}
        for run_id, entry in runs.items():
            try:
                entries[run_id] = LedgerEntry(
                    executor=str(entry["executor"]),
                    job_id=str(entry["job_id"]),
                    submitted=float(entry["submitted"]),
                    pack=tuple(entry.get("pack", ())),
                )
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry: that run is simply submitted again
        return entries

    def add(self, executor: str, jobs: Mapping[str, Iterable[str]]) -> None:
        """Record submissions: job id -> the run ids it runs, in order."""
        entries = self.load()
        now = time.time()
        for job_id, run_ids in jobs.items():
            pack = tuple(run_ids)
            for run_id in pack:
                entries[run_id] = LedgerEntry(executor, job_id, now, pack)
        self._save(entries)

    def _save(self, entries: Mapping[str, LedgerEntry]) -> None:
        runs: dict[str, Any] = {}
        for run_id, entry in sorted(entries.items()):
            runs[run_id] = {**asdict(entry), "pack": list(entry.pack)}
        write_json_atomic(self.path, {"schema": 1, "runs": runs})
