"""Leaderboards: markdown tables and Figure-1-style plots from a directory of run records.

``write_leaderboard(results_dir)`` writes ``leaderboard.md`` and one PNG and one SVG per setup
next to it;
``render_leaderboard`` returns the markdown without writing anything (``--check`` compares it
with the file on disk). The output depends on the records only, so it is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dstbench.errors import DstbenchError, choices_text, did_you_mean
from dstbench.io import write_bytes_atomic, write_text_atomic
from dstbench.leaderboard.data import (
    MASK_RETAINED,
    SECONDS_PER_STEP,
    Entry,
    Results,
    load_many,
    load_results,
)
from dstbench.leaderboard.plot import board_image
from dstbench.leaderboard.render import (
    DEFAULT_REFERENCE,
    SECONDARY_METRIC,
    STATS,
    Style,
    leaderboard_markdown,
    trained_entries,
)
from dstbench.leaderboard.sweep import sweep_panels, sweep_png, swept_value
from dstbench.leaderboard.table import Board, _varying_keys, build_boards, slug

DEFAULT_NAME = "leaderboard.md"

__all__ = [
    "DEFAULT_NAME",
    "Board",
    "Entry",
    "Leaderboard",
    "Results",
    "build_boards",
    "load_many",
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
    #: PNG file name -> the key a board sweeps other than density (drawn against it).
    sweeps: dict[str, str] = field(default_factory=dict)
    #: The board's entries, for sweep plots.
    entries: dict[str, list[Entry]] = field(default_factory=dict)

    #: ``(path, why)`` of the records left out because they are not trusted.
    untrusted: tuple[tuple[Path, str], ...] = ()
    #: The spread of the cells, drawn as the plots' band (``t``, ``bootstrap`` or ``std``).
    stat: str = "t"

    def png(self, name: str) -> bytes:
        """The PNG of plot ``name`` (see :meth:`image`)."""
        return self.image(name, "png")

    def image(self, name: str, fmt: str = "png") -> bytes:
        """Plot ``name`` as ``png`` or ``svg``: accuracy vs density, or vs the swept key."""
        import matplotlib

        board = self.plots[name]
        key = self.sweeps.get(name)
        if key is None:
            return board_image(board, fmt, self.stat)
        panels = sweep_panels(self.entries[name], key)
        with matplotlib.rc_context({"svg.hashsalt": "dstbench", "svg.fonttype": "none"}):
            title = f"{board.title}: test accuracy vs {key}"
            return sweep_png(panels, key, title, fmt=fmt, stat=self.stat)


Dirs = str | Path | Sequence[str | Path]


def _dirs(results_dir: Dirs) -> list[str | Path]:
    return [results_dir] if isinstance(results_dir, (str, Path)) else list(results_dir)


def _swept_key(entries: Sequence[Entry]) -> str | None:
    """The first numeric spec key other than density that varies within a setup."""
    for key in _varying_keys(entries):
        values = [swept_value(e.spec, key) for e in entries]
        numbers = [v for v in values if v is not None]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) and (
            len(set(numbers)) > 1
        ):
            return key
    return None


def check_reference(boards: Sequence[Board], reference: str) -> None:
    """Raise a one-line error unless some table has a row named ``reference``."""
    names = sorted({r.base for b in boards for t in b.tables for r in t.rows})
    if reference not in names:
        msg = (
            f"--reference: no row {reference!r} in the leaderboard"
            f"{did_you_mean(reference, names)}; rows: {choices_text(names)}"
        )
        raise DstbenchError(msg)


def render_leaderboard(
    results_dir: Dirs,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
    stat: str = "t",
    reference: str | None = None,
    show_time: bool = False,
) -> Leaderboard:
    """Build the leaderboard of ``results_dir`` (one directory or several, merged by run
    id) for a markdown file at ``output``.

    :param output: where the markdown will live (default ``<first dir>/leaderboard.md``);
        links to plots and records are relative to it.
    :param all_records: use every record, not just the runs of the suite's manifest.
    :param stat: the spread shown in cells: ``"t"`` (95% t interval, the default),
        ``"bootstrap"`` or ``"std"``.
    :param reference: the row paired differences are computed against (default
        ``magnitude``; an explicit name must exist).
    :param show_time: add the training-time tables (ms per step, × the dense run's); left out
        by default, so that re-running a study gives the same leaderboard.
    :raises DstbenchError: when there are no runs, or the reference row does not exist.
    """
    if stat not in STATS:
        raise DstbenchError(f"--stat: expected one of {choices_text(STATS)}, got {stat!r}")
    dirs = _dirs(results_dir)
    results = load_many(dirs, all_records=all_records)
    target = Path(output) if output is not None else Path(dirs[0]) / DEFAULT_NAME
    trained = trained_entries(results.entries)
    boards = build_boards(trained)
    if reference is not None:
        check_reference(boards, reference)
    style = Style(stat=stat, reference=reference or DEFAULT_REFERENCE)
    secondary = build_boards(trained, metric=SECONDARY_METRIC)
    movement = build_boards(trained, metric=MASK_RETAINED)
    timing = build_boards(trained, metric=SECONDS_PER_STEP) if show_time else []
    plots: dict[str, Board] = {}
    sweeps: dict[str, str] = {}
    board_entries: dict[str, list[Entry]] = {}
    links: dict[str, str] = {}
    for board in boards:
        if not any(c.values for t in board.tables for r in t.rows for c in r.cells.values()):
            continue  # nothing to draw yet
        name = f"{target.stem}-{slug(board.title)}.png"
        while name in plots:  # two titles with the same slug
            name = name.replace(".png", "-1.png")
        plots[name] = board
        links[board.title] = name
        entries = [e for t in board.tables for e in t.entries]
        board_entries[name] = list({e.run_id: e for e in entries}.values())
        key = _swept_key(board_entries[name])
        if key is not None:
            sweeps[name] = key
    markdown = leaderboard_markdown(
        results,
        boards,
        secondary,
        links,
        target.parent,
        style,
        sweeps={
            board.title: sweeps[links[board.title]]
            for board in boards
            if board.title in links and links[board.title] in sweeps
        },
        movement=movement,
        timing=timing,
    )
    return Leaderboard(
        markdown=markdown,
        plots=plots,
        sweeps=sweeps,
        entries=board_entries,
        untrusted=results.untrusted,
        stat=stat,
    )


def write_leaderboard(
    results_dir: Dirs,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
    stat: str = "t",
    reference: str | None = None,
    show_time: bool = False,
) -> Path:
    """Write the markdown and its plots, PNG and SVG (atomically); return the markdown's path."""
    target = Path(output) if output is not None else Path(_dirs(results_dir)[0]) / DEFAULT_NAME
    board = render_leaderboard(
        results_dir,
        target,
        all_records=all_records,
        stat=stat,
        reference=reference,
        show_time=show_time,
    )
    for name in board.plots:
        write_bytes_atomic(target.parent / name, board.image(name, "png"))
        write_bytes_atomic(target.parent / svg_name(name), board.image(name, "svg"))
    write_text_atomic(target, board.markdown)
    return target


def svg_name(png_name: str) -> str:
    """The SVG written next to the PNG ``png_name``."""
    return png_name[: -len(".png")] + ".svg"


def stale_reasons(
    results_dir: Dirs,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
    stat: str = "t",
    reference: str | None = None,
    show_time: bool = False,
) -> list[str]:
    """Why the leaderboard at ``output`` is not what the records give now (empty: it is).

    It is stale when the markdown differs, when a plot it links to (PNG or SVG) is missing,
    or when a record it would be built from is not trusted.
    """
    target = Path(output) if output is not None else Path(_dirs(results_dir)[0]) / DEFAULT_NAME
    board = render_leaderboard(
        results_dir,
        target,
        all_records=all_records,
        stat=stat,
        reference=reference,
        show_time=show_time,
    )
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
    results_dir: Dirs,
    output: str | Path | None = None,
    *,
    all_records: bool = False,
    stat: str = "t",
    reference: str | None = None,
    show_time: bool = False,
) -> bool:
    """True when the leaderboard at ``output`` is stale (see :func:`stale_reasons`)."""
    return bool(
        stale_reasons(
            results_dir,
            output,
            all_records=all_records,
            stat=stat,
            reference=reference,
            show_time=show_time,
        )
    )
