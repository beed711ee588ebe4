"""What a leaderboard is built from: the runs of a results directory.

With a suite manifest (``suite.json``, written by ``dstbench suite``) the entries are exactly the
suite's runs, finished or not, so a leaderboard knows how many seeds each cell expects and how
many runs are still pending. Without one (records gathered by hand, e.g. from ``dstbench run
-o DIR/x.json``) every readable record in the directory is an entry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dstbench.errors import DstbenchError
from dstbench.io import read_json
from dstbench.suite.store import MISSING, RunStore, record_problem

#: Status of a suite run that has no record yet.
PENDING = MISSING
#: Pseudo-metric: the fraction of the initial mask still active at the end.
MASK_RETAINED = "mask_retained"
#: The run's measured training time per step (``timings.seconds_per_step``), in seconds.
SECONDS_PER_STEP = "seconds_per_step"


@dataclass(frozen=True)
class Entry:
    """One run: its normalized spec, its status and its record (None while pending)."""

    run_id: str
    spec: dict[str, Any]
    status: str
    record: dict[str, Any] | None
    #: The directory its record is (or would be) in, when results of several are merged.
    runs_dir: Path | None = None

    def metric(self, name: str) -> float | None:
        """A metric of an ``ok`` run (None otherwise, or when the run did not report it).

        ``mask_retained`` is the record's overall mask movement (``mask_movement.retained``);
        ``seconds_per_step`` its measured training time per step (``timings``).
        """
        if self.status != "ok" or self.record is None:
            return None
        if name == MASK_RETAINED:
            value = (self.record.get("mask_movement") or {}).get("retained")
        elif name == SECONDS_PER_STEP:
            value = (self.record.get("timings") or {}).get(name)
        else:
            value = (self.record.get("metrics") or {}).get(name)
        return float(value) if isinstance(value, (int, float)) else None


@dataclass(frozen=True)
class Results:
    """The entries of a results directory and what describes it."""

    title: str
    description: str
    entries: list[Entry]
    #: Where the records are (``<dir>/runs`` or the directory itself).
    runs_dir: Path
    #: Records on disk that are not part of the suite (left from an older version of it).
    outside_suite: int = 0
    #: ``(path, why)`` of every record that is not trusted (left out of the tables).
    untrusted: tuple[tuple[Path, str], ...] = ()


def load_results(directory: str | Path, *, all_records: bool = False) -> Results:
    """Read the runs of ``directory`` (a suite's results, or a folder of records).

    :param all_records: ignore the manifest and use every record found.
    :raises DstbenchError: when the directory holds no run at all.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DstbenchError(f"{root}: no such results directory")
    store = RunStore(root)
    runs_dir = store.runs if store.runs.is_dir() else root
    manifest = None if all_records else store.read_manifest()
    in_store = store.runs.is_dir()
    readable, untrusted = _records(runs_dir, names_are_ids=in_store)
    found = {str(record["run_id"]): record for _, record in readable}
    if manifest is not None:
        entries = []
        for index, run in enumerate(manifest["runs"]):
            if not (
                isinstance(run, dict)
                and isinstance(run.get("run_id"), str)
                and record_problem({"status": "failed", **run}, None) is None
            ):
                msg = f"{store.root / 'suite.json'}: runs[{index}] is not a run id with its spec"
                raise DstbenchError(msg)
            record = found.get(run["run_id"])
            status = record["status"] if record is not None else PENDING
            entries.append(Entry(run["run_id"], run["spec"], status, record))
        listed = {run["run_id"] for run in manifest["runs"]}
        outside = sum(1 for run_id in found if run_id not in listed)
        return Results(
            title=str(manifest.get("suite") or root.name),
            description=str(manifest.get("description") or ""),
            entries=entries,
            runs_dir=runs_dir,
            outside_suite=outside,
            untrusted=tuple(untrusted),
        )
    entries = [
        Entry(run_id, record["spec"], record["status"], record)
        for run_id, record in sorted(found.items())
    ]
    if not entries:
        msg = f"{root}: no run records found (expected {runs_dir}/*.json or a suite.json)"
        if untrusted:
            path, why = untrusted[0]
            msg += f"; {len(untrusted)} record(s) are not trusted, e.g. {path}: {why}"
        raise DstbenchError(msg)
    return Results(
        title=root.resolve().name,
        description="",
        entries=entries,
        runs_dir=runs_dir,
        untrusted=tuple(untrusted),
    )


def load_many(directories: Sequence[str | Path], *, all_records: bool = False) -> Results:
    """The runs of several results directories (machines, cluster jobs), merged.

    A run id seen in several directories is one run: a finished record wins over a pending
    run, an ``ok`` record over another final status, and otherwise the first directory given.
    :raises DstbenchError: when a directory is missing or holds no run.
    """
    if len(directories) == 1:
        return load_results(directories[0], all_records=all_records)
    loaded = [load_results(d, all_records=all_records) for d in directories]
    merged: dict[str, Entry] = {}
    for results in loaded:
        for entry in results.entries:
            entry = replace(entry, runs_dir=results.runs_dir)
            kept = merged.get(entry.run_id)
            if kept is None or _preference(entry) > _preference(kept):
                merged[entry.run_id] = entry
    return Results(
        title=" + ".join(dict.fromkeys(r.title for r in loaded)),
        description=" ".join(dict.fromkeys(r.description for r in loaded if r.description)),
        entries=list(merged.values()),
        runs_dir=loaded[0].runs_dir,
        outside_suite=sum(r.outside_suite for r in loaded),
        untrusted=tuple(u for r in loaded for u in r.untrusted),
    )


def _preference(entry: Entry) -> int:
    if entry.status == "ok":
        return 2
    return 0 if entry.status == PENDING else 1


def _records(
    directory: Path, *, names_are_ids: bool
) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[Path, str]]]:
    """Trusted run records in name order, and ``(path, why)`` of each untrusted one.

    :param names_are_ids: the folder is a store's ``runs/``, where a file is named after the
        run id it holds; elsewhere (records gathered by hand) names are free.
    """
    out = []
    untrusted = []
    for path in sorted(directory.glob("*.json")):
        try:
            record = read_json(path)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            if names_are_ids:
                untrusted.append((path, f"unreadable ({type(exc).__name__})"))
            continue
        if not names_are_ids and not (isinstance(record, dict) and "status" in record):
            continue  # some other JSON file next to hand-gathered records
        problem = record_problem(record, path.stem if names_are_ids else None)
        if problem is None:
            out.append((path, record))
        else:
            untrusted.append((path, problem))
    return out, untrusted
