"""Leaderboards: markdown tables and Figure-1-style plots from a directory of run records.

``write_leaderboard(results_dir)`` writes ``leaderboard.md`` and one PNG and one SVG per setup
next to it;
``render_leaderboard`` returns the markdown without writing anything (``--check`` compares it
with the file on disk). The output depends on the records only, so it is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dstbench.io import write_bytes_atomic, write_text_atomic
from dstbench.leaderboard.data import Entry, Results, load_results
from dstbench.leaderboard.render import SECONDARY_METRIC, leaderboard_markdown
from dstbench.leaderboard.table import Board, build_boards, slug

DEFAULT_NAME = "leaderboard.md"

__all__ = [
    "DEFAULT_NAME",
    "Board",
    "Entry",
    "Leaderboard",
    "Results",
    "build_boards",
    "load_results",
    "render_leaderboard",
    "stale_reasons",
    "write_leaderboard",
]


@dataclass(frozen=True)
class Leaderboard:
    """A rendered leaderboard: the markdown and the plots it links to."""

    markdown: str
    #: PNG file name (next to the markdown; an SVG of the same stem goes with it) -> the board.
    plots: dict[str, Board]
    #: ``(path, why)`` of the records left out because they are not trusted.
    untrusted: tuple[tuple[Path, str], ...] = ()


def render_leaderboard(
    results_dir: str | Path,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
) -> Leaderboard:
    """Build the leaderboard of ``results_dir`` for a markdown file at ``output``.

    :param output: where the markdown will live (default ``<results_dir>/leaderboard.md``);
        links to plots and records are relative to it.
    :param all_records: use every record, not just the runs of the suite's manifest.
    :raises DstbenchError: when there are no runs.
    """
    results = load_results(results_dir, all_records=all_records)
    target = Path(output) if output is not None else Path(results_dir) / DEFAULT_NAME
    boards = build_boards(results.entries)
    secondary = build_boards(results.entries, metric=SECONDARY_METRIC)
    plots: dict[str, Board] = {}
    links: dict[str, str] = {}
    for board in boards:
        if not any(c.values for t in board.tables for r in t.rows for c in r.cells.values()):
            continue  # nothing to draw yet
        name = f"{target.stem}-{slug(board.title)}.png"
        while name in plots:  # two titles with the same slug
            name = name.replace(".png", "-1.png")
        plots[name] = board
        links[board.title] = name
    markdown = leaderboard_markdown(results, boards, secondary, links, target.parent)
    return Leaderboard(markdown=markdown, plots=plots, untrusted=results.untrusted)


def write_leaderboard(
    results_dir: str | Path,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
) -> Path:
    """Write the markdown and its plots, PNG and SVG (atomically); return the markdown's path."""
    from dstbench.leaderboard.plot import board_png, board_svg

    target = Path(output) if output is not None else Path(results_dir) / DEFAULT_NAME
    board = render_leaderboard(results_dir, target, all_records=all_records)
    for name, setup in board.plots.items():
        write_bytes_atomic(target.parent / name, board_png(setup))
        write_bytes_atomic(target.parent / svg_name(name), board_svg(setup))
    write_text_atomic(target, board.markdown)
    return target


def svg_name(png_name: str) -> str:
    """The SVG written next to the PNG ``png_name``."""
    return png_name[: -len(".png")] + ".svg"


def stale_reasons(
    results_dir: str | Path, output: str | Path | None = None, *, all_records: bool = False
) -> list[str]:
    """Why the leaderboard at ``output`` is not what the records give now (empty: it is).

    It is stale when the markdown differs, when a plot it links to (PNG or SVG) is missing,
    or when a record it would be built from is not trusted.
    """
    target = Path(output) if output is not None else Path(results_dir) / DEFAULT_NAME
    board = render_leaderboard(results_dir, target, all_records=all_records)
    reasons = []
    try:
        if target.read_text(encoding="utf-8") != board.markdown:
            reasons.append(f"{target}: differs from what the records give now")
    except OSError as exc:
        reasons.append(f"{target}: cannot be read ({exc.strerror or exc})")
    for name in board.plots:
        for plot in (target.parent / name, target.parent / svg_name(name)):
            if not plot.is_file():
                reasons.append(f"{plot}: plot missing")
    reasons += [f"{path}: untrusted record ({why})" for path, why in board.untrusted]
    return reasons


def is_stale(
    results_dir: str | Path, output: str | Path | None = None, *, all_records: bool = False
) -> bool:
    """True when the leaderboard at ``output`` is stale (see :func:`stale_reasons`)."""
    return bool(stale_reasons(results_dir, output, all_records=all_records))
