"""The result store: one JSON record per run, at ``<root>/runs/<run_id>.json``.

A run is *done* when its record exists and says ``ok``. Records are written atomically (a
temporary file in the same directory, then a rename), so a reader sees a whole record or none,
whenever the writer is killed. Next to the runs the store keeps ``suite.json`` (the suite's run
matrix, which leaderboards use to know what is expected) and ``suite.toml`` (the suite file as
it was last run).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dstbench.errors import SuiteError
from dstbench.io import read_json, write_json_atomic, write_text_atomic

#: Record statuses written by the engine.
FINAL_STATUSES = ("ok", "failed", "diverged", "invalid")
#: Status of a run without a (readable) record.
MISSING = "missing"
MANIFEST = "suite.json"
SUITE_COPY = "suite.toml"
LOCK = ".lock"


class RunStore:
    """Records of one suite's runs under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"

    def record_path(self, run_id: str) -> Path:
        """Where the record of ``run_id`` lives."""
        return self.runs / f"{run_id}.json"

    def load(self, run_id: str) -> dict[str, Any] | None:
        """The record of ``run_id``, or None when it is missing or unreadable."""
        path = self.record_path(run_id)
        try:
            record = read_json(path)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("status") not in FINAL_STATUSES:
            return None
        return record

    def status(self, run_id: str) -> str:
        """``ok``, ``failed``, ``diverged``, ``invalid``, or ``missing``."""
        record = self.load(run_id)
        return MISSING if record is None else str(record["status"])

    def statuses(self, run_ids: Iterable[str]) -> dict[str, str]:
        """:meth:`status` of each run id."""
        return {run_id: self.status(run_id) for run_id in run_ids}

    def write(self, record: Mapping[str, Any]) -> Path:
        """Write ``record`` atomically at its run id's path."""
        path = self.record_path(str(record["run_id"]))
        write_json_atomic(path, record)
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

    def clean_temporaries(self) -> int:
        """Remove temporary files left by writers that were killed; return how many."""
        removed = 0
        if self.runs.is_dir():
            for path in self.runs.glob(".*.tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

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
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                msg = (
                    f"{self.root}: another dstbench suite is running on these results "
                    f"({holder}); wait for it or use another --output"
                )
                raise SuiteError(msg) from None
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid()}))
            handle.flush()
            yield
        finally:
            handle.close()
