"""The result store: one JSON record per run, at ``<root>/runs/<run_id>.json``.

A run is *done* when its record exists, is trusted (:func:`record_problem`) and says ``ok``.
A record is trusted only when it is what it claims to be: a regular file whose name is its run
id, whose spec hashes to that id, whose values have the types and ranges of the record format
(:mod:`dstbench.suite.validity`; an ``ok`` record has a test accuracy, unless it is an
overlap-at-initialisation run, whose result is its recorded overlap) and whose content matches
the digest it was written with (schema 2 and later; :func:`dstbench.contracts.record.seal`).
Anything else (a record copied over another run's file, edited by hand, truncated by a full
disk, a link) is reported,
moved to ``<root>/quarantine/`` by :meth:`RunStore.quarantine_untrusted` and its run counts as
missing, so the next ``dstbench suite`` runs it again. Records are written atomically (a
temporary file in the same directory, then a rename), so a reader sees a whole record or none,
whenever the writer is killed. Next to the runs the store keeps ``suite.json`` (the suite's run
matrix, which leaderboards use to know what is expected) and ``suite.toml`` (the suite file as
it was last run).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dstbench.errors import SuiteError
from dstbench.io import (
    OutputError,
    check_writable_dir,
    fsync_dir,
    open_lock_file,
    os_error_text,
    read_json,
    write_json_atomic,
    write_text_atomic,
)

#: Record statuses written by the engine.
FINAL_STATUSES = ("ok", "failed", "diverged", "invalid")
#: Status of a run without a (readable) record.
MISSING = "missing"
QUARANTINE = "quarantine"
MANIFEST = "suite.json"
SUITE_COPY = "suite.toml"
LOCK = ".lock"


#: Spec keys a record must hold for its run to be placed in a leaderboard.
_SPEC_COMPONENTS = ("model", "dataset")
_SPEC_SCALARS = ("method", "density", "seed")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _overlap_at_init(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is an overlap-at-initialisation run that recorded its overlap: it
    trains nothing, so it has no test accuracy, and its result is the overlap itself."""
    spec = record.get("spec") or {}
    overlap = (record.get("analysis") or {}).get("overlap")
    return (
        spec.get("jaccard_at_init") is True
        and (record.get("metrics") or {}).get("test_accuracy") is None
        and isinstance(overlap, list)
        and bool(overlap)
    )


def record_problem(record: Any, file_id: str | None = None) -> str | None:
    """Why ``record`` cannot be trusted as the result of run ``file_id``, or None if it can.

    :param file_id: the run id its file name claims (None for records outside a store,
        e.g. ``dstbench run -o mine.json``, whose names are the user's).
    """
    from dstbench.contracts.record import digest_problem
    from dstbench.contracts.spec import spec_hash
    from dstbench.suite.validity import record_values_problem

    if not isinstance(record, dict):
        return f"not a JSON object ({type(record).__name__})"
    status = record.get("status")
    if status not in FINAL_STATUSES:
        return f"status {status!r} is not one of {', '.join(FINAL_STATUSES)}"
    run_id = record.get("run_id")
    if not isinstance(run_id, str):
        return "no run_id"
    if file_id is not None and run_id != file_id:
        return f"its run_id is {run_id!r}, not its file name's {file_id!r}"
    spec = record.get("spec")
    if not isinstance(spec, dict):
        return "no spec"
    for key in _SPEC_COMPONENTS:
        if not isinstance(spec.get(key), dict) or not isinstance(spec[key].get("name"), str):
            return f"spec.{key} is missing or not a component"
    for key in _SPEC_SCALARS:
        if key not in spec:
            return f"spec.{key} is missing"
    try:
        actual = spec_hash(spec)
    except (TypeError, ValueError) as exc:
        return f"its spec cannot be hashed ({exc})"
    if actual != run_id:
        return f"its spec hashes to {actual!r}, not to its run_id {run_id!r}"
    problem = record_values_problem(record) or digest_problem(record)
    if problem is not None:
        return problem
    if status == "ok":
        metrics = record.get("metrics")
        if not isinstance(metrics, dict):
            return "status ok without metrics"
        if not _finite_number(metrics.get("test_accuracy")) and not _overlap_at_init(record):
            return f"status ok but metrics.test_accuracy is {metrics.get('test_accuracy')!r}"
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not _finite_number(value):
                return f"status ok but metrics.{name} is {value!r}"
            if value is not None and not isinstance(value, (int, float, list, dict, str)):
                return f"status ok but metrics.{name} is not a number"
    return None


def _not_a_file(path: Path) -> str | None:
    """What is at ``path`` when it is not a regular file (``a symbolic link``), else None.

    A store's record files are regular files that its writers created; a link planted there
    would make writers or readers reach outside the results directory.
    """
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def write_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write a record's JSON form atomically at ``path``, sealed with its content digest
    (:func:`dstbench.contracts.record.seal`), so that an edit made afterwards is detected.

    :raises OutputError: when it cannot be written (a link or a directory there, no space).
    """
    from dstbench.contracts.record import seal

    write_json_atomic(path, seal(record))


class RunStore:
    """Records of one suite's runs under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"

    def record_path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The record of ``run_id``, or None when it is missing, unreadable or untrusted."""
        path = self.record_path(run_id)
        if _not_a_file(path) is not None:
            return None
        try:
            record = read_json(path)
        except (OSError, ValueError):
            return None
        if record_problem(record, run_id) is not None:
            return None
        return record

    def digest(self, run_id: str) -> str | None:
        """The content digest of the trusted record of ``run_id``, or None without one."""
        from dstbench.contracts.record import content_digest

        record = self.load(run_id)
        return None if record is None else content_digest(record)

    def status(self, run_id: str) -> str:
        """``ok``, ``failed``, ``diverged``, ``invalid``, or ``missing``."""
        record = self.load(run_id)
        return MISSING if record is None else str(record["status"])

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        """:meth:`status` of each run id."""
        return {run_id: self.status(run_id) for run_id in run_ids}

    def write(self, record: Mapping[str, Any]) -> Path:
        """Write ``record`` atomically at its run id's path (with its digest)."""
        path = self.record_path(str(record["run_id"]))
        write_record(path, record)
        return path

    def records(self) -> Iterator[tuple[Path, dict[str, Any] | None]]:
        """Every ``runs/*.json`` file in name order, with its record (None if unreadable)."""
        if not self.runs.is_dir():
            return
        for path in sorted(self.runs.glob("*.json")):
            try:
                record = read_json(path)
            except (OSError, ValueError):
                record = None
            yield path, record if isinstance(record, dict) else None

    def untrusted(self) -> Iterator[tuple[Path, str]]:
        """Every record file that cannot be trusted, with why (see :func:`record_problem`)."""
        if not self.runs.is_dir():
            return
        for path in sorted(self.runs.glob("*.json")):
            what = _not_a_file(path)
            if what is not None:
                yield path, f"{what}, not a record file"
                continue
            try:
                record = read_json(path)
            except (OSError, ValueError) as exc:
                yield path, f"unreadable ({type(exc).__name__})"
                continue
            problem = record_problem(record, path.stem)
            if problem is not None:
                yield path, problem

    def quarantine_untrusted(self) -> list[str]:
        """Move untrusted records to ``<root>/quarantine/``; one line per record moved.

        Their runs then count as missing and run again. A record is moved, not deleted: it
        may be the only trace of what went wrong.
        """
        lines = []
        for path, problem in list(self.untrusted()):
            folder = self.root / QUARANTINE
            try:
                folder.mkdir(exist_ok=True)
                destination = folder / path.name
                if destination.exists():
                    destination = folder / f"{path.stem}.{secrets.token_hex(4)}.json"
                os.replace(path, destination)
            except OSError as exc:
                raise OutputError(os_error_text(path, exc)) from None
            lines.append(
                f"{path}: untrusted record ({problem}); moved to {destination}, "
                "its run will run again"
            )
        if lines:
            fsync_dir(self.runs)
        return lines

    def clean_temporaries(self) -> int:
        """Remove temporary files left by writers that were killed; return how many."""
        removed = 0
        if self.runs.is_dir():
            for path in self.runs.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def remove_if_unused(self) -> bool:
        """Remove the results folder when it holds nothing but what a suite writes before its
        first run (manifest, suite copy, lock, empty folders); return whether it did.

        A refused suite (the scheduler would not take its runs) leaves nothing behind.
        """
        if not self.root.is_dir():
            return False
        ours = {MANIFEST, SUITE_COPY, LOCK}
        paths = sorted(self.root.rglob("*"), key=lambda p: len(p.parts), reverse=True)
        if any(p.is_symlink() or (p.is_file() and p.name not in ours) for p in paths):
            return False
        if any(p.is_file() and p.parent != self.root for p in paths):
            return False
        for path in paths:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        self.root.rmdir()
        return True

    # --- the suite's files ---------------------------------------------------------------

    def write_manifest(
        self, name: str, description: str, source: str, cells: Sequence[Mapping[str, Any]]
    ) -> None:
        """Record the suite's run matrix (``cells``: ``run_id`` and ``spec`` of each run)."""
        manifest = {
            "suite": name,
            "description": description,
            "source": source,
            "runs": [{"run_id": c["run_id"], "spec": c["spec"]} for c in cells],
        }
        write_json_atomic(self.root / MANIFEST, manifest)

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest written by :meth:`write_manifest`, or None."""
        path = self.root / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = read_json(path)
        except (OSError, ValueError) as exc:
            raise SuiteError(f"{path}: unreadable suite manifest: {exc}") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
            raise SuiteError(f"{path}: not a dstbench suite manifest")
        return manifest

    def write_suite_copy(self, text: str) -> None:
        """Keep the suite file's text next to its results."""
        write_text_atomic(self.root / SUITE_COPY, text)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the store while a suite runs.

        A second ``dstbench suite`` on the same results would run the same runs twice; it is
        refused instead. The lock is an OS file lock, released by the OS whenever the holder
        dies (even by SIGKILL), so it never goes stale.
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: run without the guard
            yield
            return
        check_writable_dir(self.root)
        # Opened without following a symlink or truncating: a planted link in a shared
        # results directory must not destroy its target.
        with open_lock_file(self.root / LOCK) as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                msg = (
                    f"{self.root}: another dstbench suite is running on these results "
                    f"({holder or 'another process'}); wait for it or use another --output"
                )
                raise SuiteError(msg) from None
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": os.getpid()}).encode(), 0)
            except OSError as exc:  # e.g. no space left on the device
                raise OutputError(os_error_text(self.root / LOCK, exc)) from None
            yield
