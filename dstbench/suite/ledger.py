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

    def add(self, executor: str, jobs: Mapping[str, Iterable[str]], intent: str = "") -> None:
        """Record submissions: job id -> the run ids it runs, in order; the submission's
        ``intent`` (see :meth:`add_intent`) is done with."""
        entries = self.load()
        now = time.time()
        for job_id, run_ids in jobs.items():
            pack = tuple(run_ids)
            for run_id in pack:
                entries[run_id] = LedgerEntry(executor, job_id, now, pack)
        intents = self.intents()
        intents.pop(intent, None)
        self._save(entries, intents)

    def intents(self) -> dict[str, list[list[str]]]:
        """Submissions announced and not yet recorded: token -> the packs of its tasks, in
        task order. One is left when the submitter died between announcing and recording."""
        try:
            data = read_json(self.path)
        except (OSError, ValueError):
            return {}
        intents = data.get("intents") if isinstance(data, dict) else None
        if not isinstance(intents, dict):
            return {}
        return {
            str(token): [[str(r) for r in pack] for pack in packs]
            for token, packs in intents.items()
            if isinstance(packs, list) and all(isinstance(p, list) for p in packs)
        }

    def add_intent(self, token: str, packs: Iterable[Iterable[str]]) -> None:
        """Announce a submission before it is made: its token (which the scheduler keeps with
        the job) and its tasks' runs, so that a later invocation can find the job even when
        this one dies before :meth:`add`."""
        intents = self.intents()
        intents[token] = [list(pack) for pack in packs]
        self._save(self.load(), intents)

    def drop_intent(self, token: str) -> None:
        """Forget an announced submission (refused, or settled by a later invocation)."""
        intents = self.intents()
        if intents.pop(token, None) is not None:
            self._save(self.load(), intents)

    def _save(
        self, entries: Mapping[str, LedgerEntry], intents: Mapping[str, list[list[str]]]
    ) -> None:
        if not entries and not intents:
            self.path.unlink(missing_ok=True)  # nothing to say: no ledger
            return
        runs: dict[str, Any] = {}
        for run_id, entry in sorted(entries.items()):
            runs[run_id] = {**asdict(entry), "pack": list(entry.pack)}
        data: dict[str, Any] = {"schema": 1, "runs": runs}
        if intents:
            data["intents"] = dict(intents)
        write_json_atomic(self.path, data)
