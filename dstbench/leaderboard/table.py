"""Leaderboard tables: runs grouped by setup and growth method, aggregated over seeds.

One *board* per setup (model, dataset); in it one *table* per growth method, with a row per
method (dense, static, then each pruning criterion) and a column per density. Dense and static
runs have no growth method, so they appear in every table of their setup. When other run-spec
keys vary within a setup (an update-period sweep, a learning-rate sweep), they become part of
the row, e.g. ``magnitude (update_period=25)``; component parameters show only where they
vary, e.g. ``mest[lam=0.1]`` next to ``mest[lam=1.0]``.

A cell holds the values of the seeds whose run is ``ok`` (by seed, so that rows can be compared
pairwise); its statistics (mean with a t or bootstrap interval, or the standard deviation) come
from :mod:`dstbench.leaderboard.stats`. Failed, diverged, invalid and pending runs are counted
separately and never averaged in. Ranks compare the sparse rows (static and DST) column by
column on the means as displayed (two decimals of a percent), ties sharing the mean of their
ranks; dense is the reference, not ranked. The best of a column is the highest mean together
with every row whose difference to it is not significant (:meth:`Table.best_rows`).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dstbench.engine.health import at_chance
from dstbench.engine.spec import FIELDS
from dstbench.labels import value_text
from dstbench.leaderboard import stats
from dstbench.leaderboard.data import Entry

#: Keys that place a run in a board, table, row and column (the rest may vary per row).
_PLACED = ("model", "dataset", "method", "criterion", "growth", "density", "seed")
_COMPONENT_KEYS = tuple(k for k, f in FIELDS.items() if f.type.startswith("component:"))
_METHOD_ORDER = {"dense": 0, "static": 1, "dst": 2}
#: Decimals of a percent shown, and used for ties in bold and ranks.
DECIMALS = 2
#: What the spread shown around a mean is, per ``--stat`` choice: the cells' ``±`` and the
#: plots' band alike.
BANDS: dict[str, str] = {
    "t": "95% Student-t confidence interval over seeds",
    "bootstrap": "95% percentile-bootstrap interval over seeds",
    "std": "± one sample standard deviation over seeds",
}


@dataclass
class CellStats:
    """The runs of one (row, density) cell."""

    values: list[float] = field(default_factory=list)
    expected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    #: seed -> value, for paired comparisons (a seed repeated in a cell keeps its first value).
    by_seed: dict[int, float] = field(default_factory=dict)
    #: ok runs whose accuracy never left chance level (training collapsed).
    at_chance: int = 0
    #: seed -> run id of the value in ``by_seed``.
    run_ids: dict[int, str] = field(default_factory=dict)

    def interval(self, method: str = "t") -> stats.Interval | None:
        """The mean with its 95% interval (``"t"`` or ``"bootstrap"``), None when empty."""
        return stats.mean_interval(self.values, method) if self.values else None

    @property
    def mean(self) -> float | None:
        """Mean of the ok runs' values, or None when there is none."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n − 1), or None with fewer than two values."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def spread(self, stat: str = "t") -> float | None:
        """The half-width shown around the mean (see :data:`BANDS`): the interval's for
        ``"t"`` and ``"bootstrap"``, the standard deviation for ``"std"``; None without one."""
        if stat == "std":
            return self.std
        interval = self.interval(stat)
        return interval.half_width if interval is not None else None

    def shown(self) -> float | None:
        """The mean as displayed (percent, rounded): what bold and ranks compare."""
        mean = self.mean
        return None if mean is None else round(100 * mean, DECIMALS)


@dataclass
class Row:
    """One method of a table."""

    label: str
    method: str
    #: density -> the cell (dense rows hold one cell shown in every column).
    cells: dict[float, CellStats]
    sort_key: tuple[Any, ...]
    #: The row's rank in each column (sparse rows with a value there).
    ranks: dict[float, float] = field(default_factory=dict)
    #: The method or criterion label without the other varying keys (``magnitude``).
    base: str = ""
    #: The other varying keys of the row (``update_period=25``), "" when none.
    extras: str = ""
    #: Average rank with its bootstrap interval over seeds and columns.
    rank_interval: stats.Interval | None = None

    @property
    def average_rank(self) -> float | None:
        """Mean rank over the columns where the row has a value."""
        return statistics.fmean(self.ranks.values()) if self.ranks else None

    def cell(self, density: float) -> CellStats:
        """The row's cell at ``density`` (dense: its only cell)."""
        if self.method == "dense":
            return next(iter(self.cells.values()), CellStats())
        return self.cells.get(density, CellStats())


@dataclass
class Table:
    """One growth method of one setup."""

    growth: str | None
    densities: list[float]
    rows: list[Row]
    entries: list[Entry]

    def best(self, density: float) -> float | None:
        """The best displayed value among the sparse rows at ``density``."""
        shown = [r.cell(density).shown() for r in self.rows if r.method != "dense"]
        values = [v for v in shown if v is not None]
        return max(values) if values else None

    def best_rows(self, density: float) -> set[str]:
        """Labels of the sparse rows tied for best at ``density``.

        The row with the highest displayed mean is best; another row ties with it when the
        95% interval of its difference to the best includes zero: paired over the seeds
        both have when they share at least two, else Welch's interval; with a single value
        on a side there is no interval, and only an equal displayed mean ties.
        """
        best = self.best(density)
        if best is None:
            return set()
        sparse = [r for r in self.rows if r.method != "dense" and r.cell(density).values]
        leaders = [r for r in sparse if r.cell(density).shown() == best]
        tied = {r.label for r in leaders}
        leader = leaders[0].cell(density)
        for row in sparse:
            if row.label in tied:
                continue
            interval, _ = stats.difference(leader.by_seed, row.cell(density).by_seed)
            if interval is not None and interval.low is not None and not interval.excludes_zero():
                tied.add(row.label)
        return tied

    def too_wide(self, density: float, method: str = "t") -> set[str]:
        """Labels of the sparse rows at ``density`` whose 95% interval is too wide to rank:
        it holds the mean of every other sparse row of the column that left chance level
        (at least two), so the row could rank anywhere among them and its place, bold or
        not, says nothing. Rows whose every run collapsed (†) rank last whatever the noise,
        so they do not count."""
        sparse = [
            r
            for r in self.rows
            if r.method != "dense"
            and r.cell(density).values
            and r.cell(density).at_chance < len(r.cell(density).values)
        ]
        if len(sparse) < 3:
            return set()
        wide = set()
        for row in sparse:
            cell = row.cell(density)
            half, mean = cell.spread(method), cell.mean
            if half is None or mean is None:
                continue
            others = [float(r.cell(density).mean or 0.0) for r in sparse if r is not row]
            if all(mean - half <= other <= mean + half for other in others):
                wide.add(row.label)
        return wide

    def seeds_per_cell(self) -> tuple[int, int]:
        """The fewest and most seeds with a result in one sparse cell (0, 0 when none)."""
        counts = [
            len(r.cell(d).values)
            for r in self.rows
            if r.method != "dense"
            for d in self.densities
            if r.cell(d).values
        ]
        return (min(counts), max(counts)) if counts else (0, 0)

    def reference_row(self, row: Row, reference: str) -> Row | None:
        """The row named ``reference`` with the same other varying keys as ``row``."""
        for candidate in self.rows:
            if candidate.base == reference and candidate.extras == row.extras:
                return candidate
        return None


@dataclass
class Board:
    """One setup: its tables (one per growth method)."""

    title: str
    model: str
    dataset: str
    tables: list[Table]


def build_boards(entries: Sequence[Entry], metric: str = "test_accuracy") -> list[Board]:
    """Group ``entries`` into boards and tables, aggregate ``metric`` and rank the rows."""
    labels = {key: _component_labeler(entries, key) for key in _COMPONENT_KEYS}
    order = _first_appearance(entries, labels)
    boards: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        setup = (labels["model"](entry.spec["model"]), labels["dataset"](entry.spec["dataset"]))
        boards.setdefault(setup, []).append(entry)
    return [
        _board(model, dataset, group, labels, order, metric)
        for (model, dataset), group in boards.items()
    ]


def _board(
    model: str,
    dataset: str,
    entries: list[Entry],
    labels: Mapping[str, Callable[[Any], str]],
    order: Mapping[str, int],
    metric: str,
) -> Board:
    varying = _varying_keys(entries)
    growths: list[str | None] = []
    for entry in entries:
        if entry.spec["method"] == "dst":
            label = labels["growth"](entry.spec["growth"])
            if label not in growths:
                growths.append(label)
    if not growths:
        growths = [None]
    tables = []
    for growth in growths:
        members = [
            e
            for e in entries
            if e.spec["method"] != "dst" or labels["growth"](e.spec["growth"]) == growth
        ]
        tables.append(_table(growth, members, varying, labels, order, metric))
    return Board(title=f"{model} on {dataset}", model=model, dataset=dataset, tables=tables)


def _table(
    growth: str | None,
    entries: list[Entry],
    varying: list[str],
    labels: Mapping[str, Callable[[Any], str]],
    order: Mapping[str, int],
    metric: str,
) -> Table:
    sparse = sorted({float(e.spec["density"]) for e in entries if e.spec["method"] != "dense"})
    densities = sparse or sorted({float(e.spec["density"]) for e in entries})
    rows: dict[str, Row] = {}
    for entry in entries:
        label, sort_key = _row_label(entry, varying, labels, order)
        row = rows.get(label)
        if row is None:
            base, extras = _split_label(label)
            row = rows[label] = Row(label, entry.spec["method"], {}, sort_key, {}, base, extras)
        column = 1.0 if entry.spec["method"] == "dense" else float(entry.spec["density"])
        cell = row.cells.setdefault(column, CellStats())
        cell.expected += 1
        cell.statuses[entry.status] = cell.statuses.get(entry.status, 0) + 1
        value = entry.metric(metric)
        if value is not None and math.isfinite(value):
            cell.values.append(value)
            cell.by_seed.setdefault(int(entry.spec["seed"]), value)
            cell.run_ids.setdefault(int(entry.spec["seed"]), entry.run_id)
            if entry.record is not None and at_chance(entry.record):
                cell.at_chance += 1
    ordered = sorted(rows.values(), key=lambda r: r.sort_key)
    _rank(ordered, densities)
    _rank_intervals(ordered, densities)
    return Table(growth=growth, densities=densities, rows=ordered, entries=entries)


def _split_label(label: str) -> tuple[str, str]:
    """``magnitude (update_period=25)`` -> (``magnitude``, ``update_period=25``)."""
    if label.endswith(")") and " (" in label:
        base, extras = label.split(" (", 1)
        return base, extras[:-1]
    return label, ""


def _rank_intervals(rows: list[Row], densities: list[float]) -> None:
    """Bootstrap intervals of the average ranks (seeds resampled per column, then columns)."""
    ranked = [r for r in rows if r.method != "dense"]
    if not ranked:
        return
    columns = []
    for density in densities:
        seeds = sorted({s for r in ranked for s in r.cell(density).by_seed})
        if not seeds:
            continue
        data = np.full((len(ranked), len(seeds)), np.nan)
        for i, row in enumerate(ranked):
            for j, seed in enumerate(seeds):
                value = row.cell(density).by_seed.get(seed)
                if value is not None:
                    data[i, j] = 100 * value
        columns.append(data)
    if not columns:
        return  # no values yet
    for row, interval in zip(ranked, stats.rank_interval(columns, decimals=DECIMALS), strict=True):
        row.rank_interval = interval


def _rank(rows: list[Row], densities: list[float]) -> None:
    """Rank the sparse rows in each column (1 = best; ties share their mean rank)."""
    for density in densities:
        shown = [(r, r.cell(density).shown()) for r in rows if r.method != "dense"]
        scored = [(r, v) for r, v in shown if v is not None]
        values = sorted((v for _, v in scored), reverse=True)
        for row, value in scored:
            first = values.index(value) + 1
            ties = values.count(value)
            row.ranks[density] = first + (ties - 1) / 2


# --- labels ------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def recorded_defaults(entries: Sequence[Entry], key: str) -> dict[str, dict[str, Any]]:
    """Component name -> its parameters' defaults, as the records of ``entries`` state them
    (``provenance.components``); names no record states are absent."""
    defaults: dict[str, dict[str, Any]] = {}
    for entry in entries:
        block = ((entry.record or {}).get("provenance") or {}).get("components") or {}
        used = block.get(key) if isinstance(block, Mapping) else None
        if isinstance(used, Mapping) and isinstance(used.get("defaults"), Mapping):
            defaults.setdefault(str(used.get("name")), dict(used["defaults"]))
    return defaults


def _component_labeler(entries: Sequence[Entry], key: str) -> Callable[[Any], str]:
    """Label components of ``key`` by name, with every parameter that defines them: those
    that vary among the entries' components of the same name (``mest[lam=0.1]`` beside
    ``mest[lam=1.0]``), and those set away from the default the records state, even when
    every run sets the same value (``mest[lam=0.1]`` alone). Records that state no defaults
    (made by an older dstbench) show only the parameters that vary."""
    seen: dict[str, dict[str, set[str]]] = {}
    for entry in entries:
        component = entry.spec.get(key)
        if not component:
            continue
        params = seen.setdefault(component["name"], {})
        for name, value in (component.get("params") or {}).items():
            params.setdefault(name, set()).add(_canonical(value))
    defaults = recorded_defaults(entries, key)
    varying = {
        name: sorted(
            p
            for p, values in params.items()
            if len(values) > 1
            or (
                name in defaults
                and p in defaults[name]
                and values != {_canonical(defaults[name][p])}
            )
        )
        for name, params in seen.items()
    }

    def label(component: Any) -> str:
        if not component:
            return "-"
        shown = varying.get(component["name"], [])
        if not shown:
            return str(component["name"])
        params = component.get("params") or {}
        inner = ",".join(f"{p}={_value_text(params.get(p))}" for p in shown)
        return f"{component['name']}[{inner}]"

    return label


_value_text = value_text


def _varying_keys(entries: Iterable[Entry]) -> list[str]:
    """Run-spec keys (other than the placing ones) with several values among ``entries``."""
    values: dict[str, set[str]] = {}
    for entry in entries:
        for key, value in entry.spec.items():
            if key in _PLACED or value is None:
                continue
            values.setdefault(key, set()).add(_canonical(value))
    return [key for key in FIELDS if len(values.get(key, ())) > 1]


def _first_appearance(
    entries: Sequence[Entry], labels: Mapping[str, Callable[[Any], str]]
) -> dict[str, int]:
    """Criterion label -> position of its first run (rows follow the suite's order)."""
    order: dict[str, int] = {}
    for entry in entries:
        if entry.spec["method"] == "dst":
            order.setdefault(labels["criterion"](entry.spec["criterion"]), len(order))
    return order


def _row_label(
    entry: Entry,
    varying: list[str],
    labels: Mapping[str, Callable[[Any], str]],
    order: Mapping[str, int],
) -> tuple[str, tuple[Any, ...]]:
    spec = entry.spec
    method = spec["method"]
    base = method if method != "dst" else labels["criterion"](spec["criterion"])
    extras: list[str] = []
    extra_keys: list[tuple[int, Any]] = []
    for key in varying:
        value = spec.get(key)
        if value is None:
            continue
        text = labels[key](value) if key in labels else _value_text(value)
        extras.append(f"{key}={text}")
        extra_keys.append(_sortable(value, text))
    label = f"{base} ({', '.join(extras)})" if extras else base
    sort_key = (_METHOD_ORDER[method], order.get(base, -1), tuple(extra_keys), label)
    return label, sort_key


def _sortable(value: Any, text: str) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, text)


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: ``mlp-on-digits``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "setup"
