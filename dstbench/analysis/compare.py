"""Two result sets side by side: cell-by-cell differences and what is significant.

A cell is a leaderboard cell (setup, growth, row, density). For every cell in both sets the
difference B − A of the mean test accuracy is given with its 95% interval: *paired* over the
runs present on both sides with the same run id (the same spec and seed: the case when only
code changed) when there are at least two, else Welch's unpaired interval. Cells present on
one side only and runs whose status changed are listed. A *regression* is a cell whose mean
drops by more than the threshold with an interval that excludes zero.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tabulate import tabulate

from dstbench.leaderboard import stats
from dstbench.leaderboard.data import SECONDS_PER_STEP, Results
from dstbench.leaderboard.render import _describe
from dstbench.leaderboard.table import DECIMALS, CellStats, build_boards

CellKey = tuple[str, str, str, float]


def cells(results: Results, metric: str = "test_accuracy") -> dict[CellKey, CellStats]:
    """(setup, growth, row label, density) -> cell of ``metric``, for every cell with a
    value."""
    out: dict[CellKey, CellStats] = {}
    for board in build_boards(results.entries, metric=metric):
        for table in board.tables:
            for row in table.rows:
                for density in table.densities if row.method != "dense" else [1.0]:
                    cell = row.cell(density)
                    if cell.values:
                        out[(board.title, table.growth or "-", row.label, density)] = cell
    return out


@dataclass(frozen=True)
class CellDiff:
    """One cell's difference B − A (fractions, not points)."""

    key: CellKey
    a: CellStats
    b: CellStats
    diff: stats.Interval | None
    paired: bool

    def regression(self, threshold_points: float) -> bool:
        """True when the mean drops by more than ``threshold_points`` and the CI excludes 0."""
        if self.diff is None:
            return False
        return self.diff.estimate * 100 < -threshold_points and self.diff.excludes_zero()


def _shared_runs(a: CellStats, b: CellStats) -> tuple[dict[int, float], dict[int, float]]:
    seeds = [s for s in a.by_seed if s in b.by_seed and a.run_ids.get(s) == b.run_ids.get(s)]
    return {s: a.by_seed[s] for s in seeds}, {s: b.by_seed[s] for s in seeds}


def cell_difference(key: CellKey, a: CellStats, b: CellStats) -> CellDiff:
    """B − A: paired over shared run ids (at least two), else Welch."""
    shared_a, shared_b = _shared_runs(a, b)
    if len(shared_a) >= 2:
        return CellDiff(key, a, b, stats.paired_difference(shared_b, shared_a), True)
    return CellDiff(key, a, b, stats.welch_difference(b.values, a.values), False)


@dataclass(frozen=True)
class Comparison:
    """Everything ``dstbench compare`` reports."""

    a: Results
    b: Results
    diffs: list[CellDiff]
    only_a: list[CellKey]
    only_b: list[CellKey]
    #: (run id, description, status in A, status in B).
    status_changes: list[tuple[str, str, str, str]]
    #: Training time per step of the cells both sides measured: (key, A, B).
    times: list[tuple[CellKey, CellStats, CellStats]] = field(default_factory=list)

    def time_ratios(self) -> list[float]:
        """B / A of the mean training time per step, cell by cell."""
        return [b.mean / a.mean for _, a, b in self.times if a.mean and b.mean is not None]

    def regressions(self, threshold_points: float) -> list[CellDiff]:
        """Cells that dropped by more than ``threshold_points`` significantly."""
        return [d for d in self.diffs if d.regression(threshold_points)]


def compare(a: Results, b: Results) -> Comparison:
    """Compare result sets ``a`` (before) and ``b`` (after)."""
    cells_a, cells_b = cells(a), cells(b)
    diffs = [cell_difference(k, cells_a[k], cells_b[k]) for k in cells_a if k in cells_b]
    times_a, times_b = cells(a, SECONDS_PER_STEP), cells(b, SECONDS_PER_STEP)
    times = [(k, times_a[k], times_b[k]) for k in times_a if k in times_b]
    status_a = {e.run_id: e for e in a.entries}
    changes = []
    for entry in b.entries:
        before = status_a.get(entry.run_id)
        if before is not None and before.status != entry.status:
            changes.append((entry.run_id, _describe(entry), before.status, entry.status))
    return Comparison(
        a,
        b,
        diffs,
        [k for k in cells_a if k not in cells_b],
        [k for k in cells_b if k not in cells_a],
        sorted(changes),
        times,
    )


def _points(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "–"
    shown = round(100 * value, DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{shown:{'+' if sign else ''}.{DECIMALS}f}"


def _mean_text(cell: CellStats) -> str:
    interval = cell.interval()
    assert interval is not None
    half = interval.half_width
    text = _points(interval.estimate)
    return (
        text
        + (f" ± {100 * half:.{DECIMALS}f}" if half is not None else "")
        + (f" (n={len(cell.values)})")
    )


def _key_text(key: CellKey) -> list[str]:
    setup, growth, row, density = key
    return [setup, growth, row, f"{density:g}"]


def comparison_markdown(comparison: Comparison, threshold: float | None = None) -> str:
    """The comparison as markdown (threshold in points marks regressions)."""
    a, b = comparison.a, comparison.b
    out = [
        f"# Comparison: {a.title} (A) → {b.title} (B)",
        "",
        "<!-- Generated by `dstbench compare` from the run records; do not edit. -->",
        "",
        "Test accuracy (%) of the final model per cell, mean ± half-width of the 95% t "
        "interval over seeds. *B − A*: difference of the means with its 95% interval, paired "
        "over the runs with the same run id on both sides when there are at least two, else "
        "Welch's unpaired interval; ▲/▼: the interval excludes zero."
        + (
            f" **REGRESSION**: a drop of more than {threshold:g} points whose interval excludes "
            "zero."
            if threshold is not None
            else ""
        ),
        "",
    ]
    rows = []
    for diff in comparison.diffs:
        interval = diff.diff
        if interval is None:
            text = "–"
        else:
            text = _points(interval.estimate, sign=True)
            half = interval.half_width
            if half is not None:
                text += f" ± {100 * half:.{DECIMALS}f}"
            if interval.excludes_zero():
                text += " ▲" if interval.estimate > 0 else " ▼"
        if threshold is not None and diff.regression(threshold):
            text += " **REGRESSION**"
        rows.append(
            [
                *_key_text(diff.key),
                _mean_text(diff.a),
                _mean_text(diff.b),
                text,
                "paired" if diff.paired else "Welch",
            ]
        )
    headers = ["setup", "growth", "method", "density", "A", "B", "B − A", "test"]
    if rows:
        out += [
            f"## Cells in both ({len(rows)})",
            "",
            tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
            "",
        ]
    else:
        out += ["## Cells in both", "", "None: the two result sets share no cell.", ""]
    for title, keys in (("Only in A", comparison.only_a), ("Only in B", comparison.only_b)):
        if keys:
            out += [
                f"## {title} ({len(keys)})",
                "",
                tabulate(
                    [_key_text(k) for k in keys],
                    headers=["setup", "growth", "method", "density"],
                    tablefmt="github",
                    disable_numparse=True,
                ),
                "",
            ]
    if comparison.times:
        out += [
            f"## Training time per step ({len(comparison.times)} cells in both)",
            "",
            "Measured milliseconds per training step, mean ± half-width of the 95% t interval "
            "over seeds; *B / A*: ratio of the means; ▲/▼: Welch's 95% interval of the "
            "difference excludes zero (B slower / faster). Compare times measured on the same "
            "machine only.",
            "",
            tabulate(
                [_time_row(key, ta, tb) for key, ta, tb in comparison.times],
                headers=["setup", "growth", "method", "density", "A ms", "B ms", "B / A"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    if comparison.status_changes:
        out += [
            f"## Status changed ({len(comparison.status_changes)})",
            "",
            tabulate(
                [list(c) for c in comparison.status_changes],
                headers=["run id", "run", "A", "B"],
                tablefmt="github",
                disable_numparse=True,
            ),
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def _ms(cell: CellStats) -> str:
    interval = cell.interval()
    if interval is None:
        return "–"
    half = interval.half_width
    return f"{1000 * interval.estimate:.2f}" + (f" ± {1000 * half:.2f}" if half else "")


def _time_row(key: CellKey, a: CellStats, b: CellStats) -> list[str]:
    ratio = "–"
    if a.mean and b.mean is not None:
        ratio = f"{b.mean / a.mean:.2f}×"
        diff = stats.welch_difference(b.values, a.values)
        if diff is not None and diff.excludes_zero():
            ratio += " ▲" if diff.estimate > 0 else " ▼"
    return [*_key_text(key), _ms(a), _ms(b), ratio]


def summary(comparison: Comparison, threshold: float | None) -> str:
    """One line: how many cells moved significantly, and the regressions."""
    up = sum(
        1 for d in comparison.diffs if d.diff and d.diff.excludes_zero() and d.diff.estimate > 0
    )
    down = sum(
        1 for d in comparison.diffs if d.diff and d.diff.excludes_zero() and d.diff.estimate < 0
    )
    text = (
        f"{len(comparison.diffs)} cells in both: {up} significantly higher in B, {down} lower; "
        f"{len(comparison.only_a)} only in A, {len(comparison.only_b)} only in B; "
        f"{len(comparison.status_changes)} status change(s)"
    )
    if threshold is not None:
        text += f"; {len(comparison.regressions(threshold))} regression(s) > {threshold:g} points"
    ratios = comparison.time_ratios()
    if ratios:
        text += f"; time per step B/A: median {statistics.median(ratios):.2f}×"
    return text
