"""Leaderboard tables: runs grouped by setup and growth method, aggregated over seeds.

One *board* per setup (model, dataset); in it one *table* per growth method, with a row per
method (dense, static, then each pruning criterion) and a column per density. Dense and static
runs have no growth method, so they appear in every table of their setup. When other run-spec
keys vary within a setup (an update-period sweep, a learning-rate sweep), they become part of
the row, e.g. ``magnitude (update_period=25)``; component parameters show only where they
vary, e.g. ``mest[lam=0.1]`` next to ``mest[lam=1.0]``.

A cell is the mean and sample standard deviation over the seeds whose run is ``ok``. Failed,
diverged, invalid and pending runs are counted separately and never averaged in. Ranks compare
the sparse rows (static and DST) column by column on the values as displayed (two decimals of
a percent), ties sharing the mean of their ranks; dense is the reference, not ranked.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dstbench.engine.spec import FIELDS
from dstbench.labels import value_text
from dstbench.leaderboard.data import Entry

#: Keys that place a run in a board, table, row and column (the rest may vary per row).
_PLACED = ("model", "dataset", "method", "criterion", "growth", "density", "seed")
_COMPONENT_KEYS = tuple(k for k, f in FIELDS.items() if f.type.startswith("component:"))
_METHOD_ORDER = {"dense": 0, "static": 1, "dst": 2}
#: Decimals of a percent shown, and used for ties in bold and ranks.
DECIMALS = 2


@dataclass
class CellStats:
    """The runs of one (row, density) cell."""

    values: list[float] = field(default_factory=list)
    expected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def mean(self) -> float | None:
        """Mean of the ok runs' values, or None when there is none."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n − 1), or None with fewer than two values."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

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
            row = rows[label] = Row(label, entry.spec["method"], {}, sort_key)
        column = 1.0 if entry.spec["method"] == "dense" else float(entry.spec["density"])
        cell = row.cells.setdefault(column, CellStats())
        cell.expected += 1
        cell.statuses[entry.status] = cell.statuses.get(entry.status, 0) + 1
        value = entry.metric(metric)
        if value is not None and math.isfinite(value):
            cell.values.append(value)
    ordered = sorted(rows.values(), key=lambda r: r.sort_key)
    _rank(ordered, densities)
    return Table(growth=growth, densities=densities, rows=ordered, entries=entries)


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


def _component_labeler(entries: Sequence[Entry], key: str) -> Callable[[Any], str]:
    """Label components of ``key`` by name, with the parameters that vary among the entries'
    components of the same name (``mest[lam=0.1]``)."""
    seen: dict[str, dict[str, set[str]]] = {}
    for entry in entries:
        component = entry.spec.get(key)
        if not component:
            continue
        params = seen.setdefault(component["name"], {})
        for name, value in (component.get("params") or {}).items():
            params.setdefault(name, set()).add(_canonical(value))
    varying = {
        name: sorted(p for p, values in params.items() if len(values) > 1)
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
