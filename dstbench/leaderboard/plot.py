"""Leaderboard plots in the style of the paper's Figure 1.

One PNG (for the markdown) and one SVG (for papers) per setup, one panel per growth method:
test accuracy against density on a log axis, a line per criterion with a band that is the
tables' interval (the 95% t interval over seeds by default; ``--stat`` picks it for both), the
static baseline in light blue with its own line style, and dense as a dashed horizontal line.
Drawn with matplotlib's Agg canvas directly (no pyplot, no display needed) and saved without
a software/date stamp, so that the same records give the same image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dstbench.leaderboard.figures import new_figure, palette, png_bytes, svg_bytes
from dstbench.leaderboard.table import BANDS, Board, Row

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The paper draws static sparse training in light blue.
STATIC_COLOR = "#74b9e7"
DENSE_COLOR = "#222222"


def _series(
    row: Row, densities: Sequence[float], stat: str
) -> tuple[list[float], list[float], list[float]]:
    xs, means, stds = [], [], []
    for density in densities:
        cell = row.cell(density)
        if cell.mean is None:
            continue
        xs.append(density)
        means.append(100 * cell.mean)
        stds.append(100 * (cell.spread(stat) or 0.0))
    return xs, means, stds


def board_png(board: Board, stat: str = "t") -> bytes:
    """The PNG of one setup's board (``stat``: the band, as in :data:`BANDS`)."""
    return board_image(board, "png", stat)


def board_svg(board: Board, stat: str = "t") -> bytes:
    """The SVG of one setup's board (vector, for papers); the same records give the same bytes."""
    return board_image(board, "svg", stat)


def board_image(board: Board, fmt: str, stat: str = "t") -> bytes:
    """One setup's board as ``png`` or ``svg`` bytes, with a band of ``stat`` (the cells')."""
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "dstbench", "svg.fonttype": "none"}):
        figure = _figure(board, stat)
        return png_bytes(figure) if fmt == "png" else svg_bytes(figure)


def _figure(board: Board, stat: str) -> Figure:
    from matplotlib.ticker import FixedLocator, NullLocator

    panels = len(board.tables)
    figure = new_figure(5.2 * panels, 4.2)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    criteria = [r.label for t in board.tables for r in t.rows if r.method == "dst"]
    colors = palette(list(dict.fromkeys(criteria)))
    for ax, table in zip(axes, board.tables, strict=True):
        for row in table.rows:
            if row.method == "dense":
                cell = row.cell(1.0)
                if cell.mean is None:
                    continue
                mean, std = 100 * cell.mean, 100 * (cell.spread(stat) or 0.0)
                ax.axhline(mean, color=DENSE_COLOR, linestyle="--", linewidth=1.2, label=row.label)
                if std:
                    ax.axhspan(mean - std, mean + std, color=DENSE_COLOR, alpha=0.06, linewidth=0)
                continue
            xs, means, stds = _series(row, table.densities, stat)
            if not xs:
                continue
            static = row.method == "static"
            color = STATIC_COLOR if static else colors[row.label]
            ax.plot(
                xs,
                means,
                color=color,
                linestyle="-." if static else "-",
                marker="s" if static else "o",
                markersize=3.5,
                linewidth=1.8 if static else 1.3,
                label=row.label,
            )
            low = [m - s for m, s in zip(means, stds, strict=True)]
            high = [m + s for m, s in zip(means, stds, strict=True)]
            ax.fill_between(xs, low, high, color=color, alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(table.densities))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(table.densities, [f"{d:g}" for d in table.densities], fontsize=8)
        if len(table.densities) > 1:
            span = math.log10(table.densities[-1] / table.densities[0])
            pad = 10 ** (0.04 * max(span, 0.3))
            ax.set_xlim(table.densities[0] / pad, table.densities[-1] * pad)
        ax.set_xlabel("density")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"growth: {table.growth}" if table.growth else "baselines", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel may have no finished run yet
            ax.legend(fontsize=7, loc="lower right")
    figure.suptitle(board.title, fontsize=11)
    figure.text(0.5, 0.005, f"mean over seeds; band: {BANDS[stat]}", ha="center", fontsize=7)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return figure
