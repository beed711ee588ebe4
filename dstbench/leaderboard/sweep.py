"""Accuracy against any swept spec key (the paper's Fig. 4 for ``update_period``).

``key`` is a run-spec key (``update_period``, ``prune_fraction``, ``lr``, ``schedule``, ...)
or a component parameter written ``component.param`` (``criterion.lam`` for MEST's λ, a
plugin's own parameter). Within each setup, growth method and density there is one line per
row (criterion, with any other varying key in its label) through the key's values; runs the
key does not apply to (static and dense baselines for ``update_period``, magnitude for
``criterion.lam``) are drawn as horizontal lines, their value shown in the *not swept* column.
Cells are the mean ± half-width of the 95% t interval over seeds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tabulate import tabulate

from dstbench.contracts.spec import format_component
from dstbench.engine.spec import FIELDS
from dstbench.errors import DstbenchError, choices_text, did_you_mean
from dstbench.leaderboard import stats
from dstbench.leaderboard.data import Entry
from dstbench.leaderboard.figures import new_figure, palette, png_bytes, svg_bytes
from dstbench.leaderboard.render import cell_text, difference_text
from dstbench.leaderboard.table import (
    _COMPONENT_KEYS,
    BANDS,
    CellStats,
    _component_labeler,
    _first_appearance,
    _row_label,
    _varying_keys,
)

#: The keys that place a run in a panel, not on a line.
_PANEL_KEYS = ("model", "dataset", "growth", "density", "seed", "method")
NOT_SWEPT = "not swept"


@dataclass
class Line:
    """One row of a panel: its cells by swept value (``None``: the key does not apply)."""

    label: str
    method: str
    sort_key: tuple[Any, ...]
    points: dict[Any, CellStats] = field(default_factory=dict)


@dataclass
class Panel:
    """One (setup, growth, density) of a sweep."""

    setup: str
    growth: str | None
    #: None when the sweep is along the density itself.
    density: float | None
    lines: list[Line]
    xs: list[Any]


def swept_value(spec: Mapping[str, Any], key: str) -> Any:
    """The value ``key`` takes in ``spec`` (None when it does not apply)."""
    if "." in key:
        component, param = key.split(".", 1)
        value = spec.get(component)
        return None if not value else (value.get("params") or {}).get(param)
    value = spec.get(key)
    if isinstance(value, dict) and "name" in value:
        return format_component(value)
    return value


def sweepable_keys(entries: Sequence[Entry]) -> list[str]:
    """Every key (spec keys and ``component.param``) taking more than one value."""
    seen: dict[str, set[str]] = {}
    for entry in entries:
        for key in FIELDS:
            if key in ("seed", "method"):
                continue
            value = swept_value(entry.spec, key)
            if value is not None:
                seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
            component = entry.spec.get(key)
            if key in _COMPONENT_KEYS and isinstance(component, dict):
                for param, v in (component.get("params") or {}).items():
                    seen.setdefault(f"{key}.{param}", set()).add(json.dumps(v, default=str))
    return sorted(k for k, values in seen.items() if len(values) > 1)


def _without(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``spec`` with ``key`` (or the component parameter) taken out, for labelling."""
    out = dict(spec)
    if "." in key:
        component, param = key.split(".", 1)
        if out.get(component):
            params = {k: v for k, v in out[component].get("params", {}).items() if k != param}
            out[component] = {**out[component], "params": params}
    else:
        out[key] = None
    return out


def check_key(entries: Sequence[Entry], key: str, where: str) -> None:
    """Raise a one-line error unless ``key`` takes several values among ``entries``."""
    keys = sweepable_keys(entries)
    if key in keys:
        return
    base = key.split(".", 1)[0]
    if base not in FIELDS:
        msg = f"unknown key {key!r}{did_you_mean(key, list(FIELDS))}; swept in {where}: "
        raise DstbenchError(msg + (choices_text(keys) if keys else "nothing"))
    if base in ("seed", "method"):
        what = (
            "seeds are the replicates averaged in every point"
            if base == "seed"
            else ("methods are the lines of every panel")
        )
        msg = f"{key!r} cannot be swept ({what}); swept keys in {where}: "
        raise DstbenchError(msg + (choices_text(keys) if keys else "none"))
    msg = f"{key!r} takes one value only in {where}; swept keys there: "
    raise DstbenchError(msg + (choices_text(keys) if keys else "none"))


def sweep_panels(entries: Sequence[Entry], key: str, metric: str = "test_accuracy") -> list[Panel]:
    """Group ``entries`` into panels and lines along ``key``."""
    stripped = [replace(e, spec=_without(e.spec, key)) for e in entries]
    labels: dict[str, Callable[[Any], str]] = {
        k: _component_labeler(stripped, k) for k in _COMPONENT_KEYS
    }
    order = _first_appearance(stripped, labels)
    varying = [k for k in _varying_keys(stripped) if k not in _PANEL_KEYS and k != key]
    panels: dict[tuple[str, str | None, float | None], dict[str, Line]] = {}
    growths: dict[str, list[str | None]] = {}
    densities: dict[str, set[float]] = {}
    for plain in stripped:
        setup = (
            f"{labels['model'](plain.spec['model'])} on {labels['dataset'](plain.spec['dataset'])}"
        )
        if plain.spec["method"] == "dst":
            growth = labels["growth"](plain.spec["growth"])
            if growth not in growths.setdefault(setup, []):
                growths[setup].append(growth)
        if plain.spec["method"] != "dense" and key != "density":
            densities.setdefault(setup, set()).add(float(plain.spec["density"]))
    for entry, plain in zip(entries, stripped, strict=True):
        spec = plain.spec
        setup = f"{labels['model'](spec['model'])} on {labels['dataset'](spec['dataset'])}"
        setup_growths = growths.get(setup) or [None]
        if spec["method"] == "dst":
            targets: list[str | None] = [labels["growth"](spec["growth"])]
        else:
            targets = list(setup_growths)
        columns: list[float | None]
        if key == "density":
            columns = [None]  # the density is the x axis: one panel per setup and growth
        elif spec["method"] == "dense":
            columns = list(sorted(densities.get(setup, {1.0})))
        else:
            columns = [float(spec["density"])]
        label, sort_key = _row_label(plain, varying, labels, order)
        # a dense run has no density to sweep along: it is drawn as a horizontal line
        dense_line = key == "density" and spec["method"] == "dense"
        x = None if dense_line else swept_value(entry.spec, key)
        value = entry.metric(metric)
        for target in targets:
            for density in columns:
                lines = panels.setdefault((setup, target, density), {})
                line = lines.setdefault(label, Line(label, spec["method"], sort_key))
                cell = line.points.setdefault(x, CellStats())
                cell.expected += 1
                if value is not None and math.isfinite(value):
                    cell.values.append(value)
                    cell.by_seed.setdefault(int(spec["seed"]), value)
    out = []
    for (setup, panel_growth, density), lines in panels.items():
        xs = sorted(
            {x for line in lines.values() for x in line.points if x is not None},
            key=_sortable,
        )
        ordered = sorted(lines.values(), key=lambda line: line.sort_key)
        out.append(Panel(setup, panel_growth, density, ordered, xs))
    out.sort(key=lambda p: (p.setup, str(p.growth), p.density or 0.0))
    return out


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def _x_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def panel_markdown(panel: Panel, key: str) -> str:
    """One panel as a table: a row per line, a column per value of ``key``."""
    constant = any(None in line.points for line in panel.lines)
    headers = ["method", *(f"{key}={_x_text(x)}" for x in panel.xs)]
    if constant:
        headers.append(NOT_SWEPT)
    rows = []
    for line in panel.lines:
        cells = [cell_text(line.points.get(x, CellStats()), bold=False) for x in panel.xs]
        if constant:
            cells.append(cell_text(line.points.get(None, CellStats()), bold=False))
        rows.append([line.label, *cells])
    aligns = ("left", *("right" for _ in headers[1:]))
    return tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )


def density_text(density: float | None) -> str:
    """``d=0.1`` for a panel at one density; empty when the density is what is swept."""
    return "" if density is None else f"d={density:g}"


def paired_to_static_markdown(panel: Panel, key: str) -> str | None:
    """Per DST line and value of ``key``, the paired difference (points) to the static
    baseline of the same density, over the seeds both have, with its 95% t interval
    (▲/▼ where it excludes zero), as the leaderboard gives it. None without a static run."""
    static = next((line for line in panel.lines if line.method == "static"), None)
    if static is None:
        return None
    base = static.points.get(None) or CellStats()

    def reference(x: Any) -> CellStats:
        # static runs are swept too when the key applies to them (the density, say)
        return static.points.get(x) or base

    rows = []
    for line in panel.lines:
        if line.method != "dst":
            continue
        cells = []
        for x in panel.xs:
            cell = line.points.get(x)
            diff = (
                None
                if cell is None
                else stats.paired_difference(cell.by_seed, reference(x).by_seed)
            )
            cells.append(difference_text(diff))
        rows.append([line.label, *cells])
    if not rows or not any(reference(x).by_seed for x in panel.xs):
        return None
    headers = ["vs static", *(f"{key}={_x_text(x)}" for x in panel.xs)]
    aligns = ("left", *("right" for _ in panel.xs))
    return tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )


def _numeric(xs: Sequence[Any]) -> bool:
    return bool(xs) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)


def sweep_png(
    panels: Sequence[Panel],
    key: str,
    title: str,
    log: bool | None = None,
    fmt: str = "png",
    stat: str = "t",
) -> bytes:
    """One figure per setup: a panel per (growth, density), accuracy vs ``key``.

    :param fmt: ``"png"`` or ``"svg"``.
    :param stat: the band around each line, the cells' spread (see :data:`BANDS`).
    """
    growths = list(dict.fromkeys(p.growth for p in panels))
    densities = sorted({p.density for p in panels}, key=lambda d: d or 0.0)
    figure = new_figure(4.6 * len(densities), 3.8 * len(growths))
    axes = figure.subplots(len(growths), len(densities), squeeze=False)
    labels = [line.label for p in panels for line in p.lines if line.method == "dst"]
    colors = palette(list(dict.fromkeys(labels)))
    for panel in panels:
        ax = axes[growths.index(panel.growth)][densities.index(panel.density)]
        numeric = _numeric(panel.xs)
        positions = {x: (float(x) if numeric else i) for i, x in enumerate(panel.xs)}
        use_log = (
            log
            if log is not None
            else (numeric and min(panel.xs) > 0 and max(panel.xs) / min(panel.xs) >= 8)
        )
        for line in panel.lines:
            color = colors.get(line.label, "#74b9e7" if line.method == "static" else "#222222")
            flat = line.points.get(None)
            if flat is not None and flat.values:
                mean = 100 * (flat.mean or 0.0)
                ax.axhline(
                    mean,
                    color=color,
                    linestyle="--" if line.method == "dense" else "-.",
                    linewidth=1.2,
                    label=line.label,
                )
            xs, ys, lows, highs = [], [], [], []
            for x in panel.xs:
                cell = line.points.get(x)
                if cell is None or not cell.values:
                    continue
                mean = 100 * (cell.mean or 0.0)
                half = 100 * (cell.spread(stat) or 0.0)
                xs.append(positions[x])
                ys.append(mean)
                lows.append(mean - half)
                highs.append(mean + half)
            if xs:
                ax.plot(
                    xs, ys, color=color, marker="o", markersize=3.5, linewidth=1.3, label=line.label
                )
                ax.fill_between(xs, lows, highs, color=color, alpha=0.15, linewidth=0)
        if use_log:
            ax.set_xscale("log")
        if panel.xs:
            from matplotlib.ticker import FixedLocator, NullLocator

            ax.xaxis.set_major_locator(FixedLocator([positions[x] for x in panel.xs]))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks(
                [positions[x] for x in panel.xs], [_x_text(x) for x in panel.xs], fontsize=7
            )
        ax.set_xlabel(key)
        ax.set_ylabel("test accuracy (%)")
        growth = f"growth: {panel.growth}, " if panel.growth else ""
        ax.set_title(f"{growth}{density_text(panel.density)}".rstrip(", "), fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
        else:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    figure.suptitle(title, fontsize=11)
    figure.text(0.5, 0.005, f"mean over seeds; band: {BANDS[stat]}", ha="center", fontsize=7)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return png_bytes(figure) if fmt == "png" else svg_bytes(figure)
