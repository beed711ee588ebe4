"""What a leaderboard is built from: the runs of a results directory.

With a suite manifest (``suite.json``, written by ``dstbench suite``) the entries are exactly the
suite's runs, finished or not, so a leaderboard knows how many seeds each cell expects and how
many runs are still pending. Without one (records gathered by hand, e.g. from ``dstbench run
-o DIR/x.json``) every readable record in the directory is an entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
#: The run's measured training time per step (``timings.seconds_per_step``, divided by the
#: group size for a batched run), in seconds.
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
    #: The file its record was read from (None while pending).
    path: Path | None = None

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
            # A batched run's time is its group's: each of its K runs costs a K-th of it.
            timings = self.record.get("timings") or {}
            value = timings.get(name)
            group = timings.get("group_size")
            if isinstance(value, (int, float)) and isinstance(group, int) and group > 1:
                value = value / group
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
    found = _one_per_run(readable, untrusted)
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
            path, record = found.get(run["run_id"], (None, None))
            status = record["status"] if record is not None else PENDING
            entries.append(Entry(run["run_id"], run["spec"], status, record, path=path))
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
        Entry(run_id, record["spec"], record["status"], record, path=path)
        for run_id, (path, record) in sorted(found.items())
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
    run and a ``failed`` one (which holds no result), and records with the same result agree.
    Records with different results under one run id conflict: each is reported as untrusted
    and the run is left pending, whatever order the directories are given in.
    :raises DstbenchError: when a directory is missing or holds no run.
    """
    if len(directories) == 1:
        return load_results(directories[0], all_records=all_records)
    loaded = [load_results(d, all_records=all_records) for d in directories]
    merged: dict[str, Entry] = {}
    untrusted = [u for r in loaded for u in r.untrusted]
    conflicted: dict[str, list[Entry]] = {}
    for results in loaded:
        for entry in results.entries:
            entry = replace(entry, runs_dir=results.runs_dir)
            if entry.run_id in conflicted:
                if _preference(entry) == 2:  # another result of that run: one more copy
                    conflicted[entry.run_id].append(entry)
                continue
            kept = merged.get(entry.run_id)
            if kept is None or _preference(entry) > _preference(kept):
                merged[entry.run_id] = entry
            elif _preference(entry) == _preference(kept) == 2 and not _same_result(
                entry.record, kept.record
            ):
                conflicted[entry.run_id] = [kept, entry]
                merged[entry.run_id] = replace(kept, status=PENDING, record=None)
    for run_id, entries in conflicted.items():
        for entry in entries:
            others = ", ".join(str(_path(o)) for o in entries if o is not entry)
            why = f"conflicts with the record of run {run_id} at {others}; neither is used"
            untrusted.append((_path(entry), why))
    return Results(
        title=" + ".join(dict.fromkeys(r.title for r in loaded)),
        description=" ".join(dict.fromkeys(r.description for r in loaded if r.description)),
        entries=list(merged.values()),
        runs_dir=loaded[0].runs_dir,
        outside_suite=sum(r.outside_suite for r in loaded),
        untrusted=tuple(untrusted),
    )


def _path(entry: Entry) -> Path:
    """Where ``entry``'s record is (the store's file name, or the record's own)."""
    if entry.path is not None:
        return entry.path
    return (entry.runs_dir or Path(".")) / f"{entry.run_id}.json"


def _preference(entry: Entry) -> int:
    """Pending 0, ``failed`` 1 (no result), any other final status 2 (a result)."""
    if entry.status == PENDING:
        return 0
    return 1 if entry.status == "failed" else 2


def result_of(record: Mapping[str, Any] | None) -> Any:
    """What a record says about its run, without where, when and how fast it ran: its status,
    reason, metrics (curves without their timings) and densities."""
    if record is None:
        return None
    metrics = dict(record.get("metrics") or {})
    curve = metrics.get("curve")
    if isinstance(curve, list):
        metrics["curve"] = [
            {k: v for k, v in e.items() if "seconds" not in k} if isinstance(e, dict) else e
            for e in curve
        ]
    return {
        "status": record.get("status"),
        "reason": record.get("reason"),
        "metrics": metrics,
        "density": record.get("density"),
    }


def _same_result(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    return bool(
        json.dumps(result_of(a), sort_keys=True) == json.dumps(result_of(b), sort_keys=True)
    )


def _one_per_run(
    readable: list[tuple[Path, dict[str, Any]]], untrusted: list[tuple[Path, str]]
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The file and record of each run id among ``readable``.

    A ``failed`` copy holds no result and gives way to any other; copies of one run id with
    different results conflict: each is added to ``untrusted`` and none is used (never the
    first or the last by name).
    """
    by_id: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path, record in readable:
        by_id.setdefault(str(record["run_id"]), []).append((path, record))
    found = {}
    for run_id, every in by_id.items():
        # A failed copy holds no result: any other copy stands for the run (as in load_many).
        copies = [c for c in every if c[1]["status"] != "failed"] or every[:1]
        if all(_same_result(copies[0][1], record) for _, record in copies[1:]):
            found[run_id] = copies[0]
            continue
        for path, _ in copies:
            others = ", ".join(str(p) for p, _ in copies if p != path)
            why = f"conflicts with the record of run {run_id} at {others}; neither is used"
            untrusted.append((path, why))
    return found


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
        except (OSError, ValueError) as exc:  # unreadable, not a file, too large, not JSON
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
