"""``dstbench.load_results``: the runs of result directories as typed records in Python.

The same runs and columns as ``dstbench export`` (:mod:`dstbench.analysis.export`): each
:class:`RunResult` carries its headline numbers as typed attributes, the normalized spec and
the whole record; :meth:`RunResults.to_frame` gives the flat table as a pandas DataFrame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dstbench.analysis.export import flat_row, flat_rows
from dstbench.errors import DstbenchError
from dstbench.leaderboard.data import Entry, load_many


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RunResult:
    """One run of a results directory (pending runs of a suite included, ``record`` None)."""

    run_id: str
    status: str
    spec: Mapping[str, Any]
    record: Mapping[str, Any] | None
    #: Final model's test accuracy (a fraction), for ``ok`` runs.
    test_accuracy: float | None
    best_val_test_accuracy: float | None
    density_achieved: float | None
    updates: int
    total_seconds: float | None
    #: True when the run never left chance level (``health.at_chance``).
    at_chance: bool
    #: Fraction of the initial active weights still active at the end.
    mask_retained: float | None

    @classmethod
    def from_entry(cls, entry: Entry) -> RunResult:
        """The typed view of one leaderboard entry."""
        row = flat_row(entry)
        return cls(
            run_id=entry.run_id,
            status=entry.status,
            spec=entry.spec,
            record=entry.record,
            test_accuracy=entry.metric("test_accuracy"),
            best_val_test_accuracy=entry.metric("best_val_test_accuracy"),
            density_achieved=_number(row["density_achieved"]),
            updates=int(row["updates"] or 0),
            total_seconds=_number(row["total_seconds"]),
            at_chance=row["at_chance"] is True,
            mask_retained=_number(row["mask_retained"]),
        )


class RunResults(list[RunResult]):
    """A list of :class:`RunResult` (in run-id order) that also converts to a DataFrame."""

    def __init__(self, results: Sequence[RunResult], entries: Sequence[Entry]) -> None:
        super().__init__(results)
        self._entries = list(entries)

    def to_frame(self) -> Any:
        """The flat table of ``dstbench export`` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise DstbenchError("to_frame() needs pandas: pip install pandas") from None
        columns, rows = flat_rows(self._entries)
        return pd.DataFrame(rows, columns=columns)


def load_results(*directories: str | Path, all_records: bool = False) -> RunResults:
    """The runs of one or more results directories (merged by run id), as typed records.

    :param all_records: every record found, not only the runs of the suites' manifests.
    :raises DstbenchError: when a directory is missing or holds no run.
    """
    if not directories:
        raise DstbenchError("load_results: give at least one results directory")
    entries = sorted(
        load_many(directories, all_records=all_records).entries, key=lambda e: e.run_id
    )
    return RunResults([RunResult.from_entry(e) for e in entries], entries)
