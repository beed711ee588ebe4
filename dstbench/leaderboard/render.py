"""Leaderboard markdown: a provenance header, then per setup a plot and a table per growth.

Everything shown comes from the records (versions, devices and dates included) and is laid out
in a fixed order with fixed number formats, so the same records always give the same bytes.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from dstbench.leaderboard import stats
from dstbench.leaderboard.data import PENDING, Entry, Results
from dstbench.leaderboard.setup import setup_markdown
from dstbench.leaderboard.table import BANDS, DECIMALS, Board, CellStats, Row, Table

#: Problem runs listed under a table before "... and N more".
MAX_LISTED = 20
_PROBLEMS = ("failed", "diverged", "invalid")
#: The metric of the second table under each growth method.
SECONDARY_METRIC = "best_val_test_accuracy"


#: How a cell's spread is shown: legend text per ``--stat`` choice.
STATS: dict[str, str] = {
    "t": "mean ± half-width of the 95% Student-t confidence interval over seeds",
    "bootstrap": "mean ± half-width of the 95% percentile-bootstrap interval over seeds "
    "(2,000 resamples seeded from the values)",
    "std": "mean ± sample standard deviation over seeds",
}
#: Fewer seeds per cell than this are flagged under a table.
FEW_SEEDS = 5
#: The row paired comparisons are made against unless told otherwise.
DEFAULT_REFERENCE = "magnitude"
#: Marks a cell holding a run whose accuracy never left chance level.
CHANCE_MARK = "†"
#: Marks a cell whose interval is too wide to rank (:meth:`Table.too_wide`).
WIDE_MARK = "‡"


@dataclass(frozen=True)
class Style:
    """How tables are drawn: the spread statistic and the reference row."""

    stat: str = "t"
    reference: str = DEFAULT_REFERENCE

    @property
    def interval_method(self) -> str:
        """The interval used for ties and differences (t unless bootstrap is asked for)."""
        return "bootstrap" if self.stat == "bootstrap" else "t"


def cell_text(cell: CellStats, *, bold: bool, stat: str = "t", wide: bool = False) -> str:
    """``97.78 ± 0.31``, with ``(k/n)`` when only k of n seeds have a result, ``†k`` when k
    of them stayed at chance level, and ``‡`` when ``wide`` (too wide to rank)."""
    mean = cell.mean
    if mean is None:
        return "–"
    text = f"{100 * mean:.{DECIMALS}f}"
    spread = cell.spread(stat)
    if spread is not None:
        text += f" ± {100 * spread:.{DECIMALS}f}"
    if bold:
        text = f"**{text}**"
    if len(cell.values) < cell.expected:
        text += f" ({len(cell.values)}/{cell.expected})"
    if cell.at_chance:
        text += f" {CHANCE_MARK}{cell.at_chance}"
    if wide:
        text += f" {WIDE_MARK}"
    return text


def _rank_text(row: Row, table: Table) -> tuple[str, bool]:
    average = row.average_rank
    if average is None:
        return ("–" if row.method != "dense" else "ref."), False
    text = f"{average:.2f}"
    interval = row.rank_interval
    if interval is not None and interval.low is not None and interval.high is not None:
        text += f" [{interval.low:.1f}, {interval.high:.1f}]"
    partial = len(row.ranks) < len(table.densities)
    return text + ("*" if partial else ""), partial


def table_markdown(table: Table, style: Style | None = None) -> str:
    """The GitHub-markdown table of one growth method."""
    style = style or Style()
    headers = ["method", *(f"d={d:g}" for d in table.densities), "avg rank [95% CI]"]
    best = {d: table.best_rows(d) for d in table.densities}
    wide = {d: table.too_wide(d, style.interval_method) for d in table.densities}
    rows = []
    partial = False
    for row in table.rows:
        cells = []
        for density in table.densities:
            cell = row.cell(density)
            bold = row.method != "dense" and row.label in best[density]
            is_wide = row.method != "dense" and row.label in wide[density]
            cells.append(cell_text(cell, bold=bold, stat=style.stat, wide=is_wide))
        rank, row_partial = _rank_text(row, table)
        partial = partial or row_partial
        rows.append([row.label, *cells, rank])
    aligns = ("left", *("right" for _ in table.densities), "right")
    text = tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )
    if partial:
        text += "\n\n\\* ranked on the densities where the row has results only."
    return text + "\n\n" + seeds_note(table)


def seeds_note(table: Table) -> str:
    """How many seeds back the table's bold ties and intervals, and whether that is few."""
    fewest, most = table.seeds_per_cell()
    if most == 0:
        return "No sparse cell has a result yet."
    count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
    text = f"Seeds per cell: {count}; every tie in bold rests on at most {most} paired seeds"
    if fewest < FEW_SEEDS:
        text += (
            f" (fewer than {FEW_SEEDS}: an interval this wide ties rows far apart; read bold "
            f"as *not separated*, not as *equal*, and {WIDE_MARK} cells as unranked)"
        )
    return text + "."


def movement_markdown(table: Table) -> str:
    """The mask-movement table: one row per DST method, a column per density."""
    headers = ["method", *(f"d={d:g}" for d in table.densities)]
    rows = [
        [row.label, *(cell_text(row.cell(d), bold=False) for d in table.densities)]
        for row in table.rows
        if row.method == "dst"
    ]
    aligns = ("left", *("right" for _ in table.densities))
    return tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )


def _ms_text(cell: CellStats) -> str:
    """``12.34 ± 0.56`` (milliseconds), with ``(k/n)`` when only k of n seeds have a time."""
    interval = cell.interval()
    if interval is None:
        return "–"
    text = f"{1000 * interval.estimate:.2f}"
    if interval.half_width is not None:
        text += f" ± {1000 * interval.half_width:.2f}"
    if len(cell.values) < cell.expected:
        text += f" ({len(cell.values)}/{cell.expected})"
    return text


def time_markdown(table: Table) -> str:
    """The training-time table: every row's measured time per step (ms) per density, and its
    ratio to the dense row's (the cost a sparse method saves, or adds)."""
    dense = next((row for row in table.rows if row.method == "dense"), None)
    headers = ["method", *(f"d={d:g}" for d in table.densities)]
    rows = []
    for row in table.rows:
        cells = []
        for density in table.densities:
            cell = row.cell(density)
            text = _ms_text(cell)
            base = dense.cell(density).mean if dense is not None else None
            if row is not dense and cell.mean is not None and base:
                text += f" ({cell.mean / base:.2f}×)"
            cells.append(text)
        rows.append([row.label, *cells])
    aligns = ("left", *("right" for _ in table.densities))
    return tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )


def time_summary(entries: Sequence[Entry]) -> str:
    """The ``<details open>`` line of a time table: what it shows and which engines measured
    it."""
    engines = sorted(
        {str((e.record or {}).get("provenance", {}).get("engine", "single")) for e in entries}
    )
    devices = sorted(
        {str((e.record or {}).get("provenance", {}).get("device", "?")) for e in entries}
    )
    return (
        "<details open><summary>Training time per step (ms, mean ± 95% t "
        f"interval over seeds; × the dense run's); engine: {_joined(engines)}; device: "
        f"{_joined(devices)}</summary>"
    )


def paired_markdown(table: Table, reference: str) -> str | None:
    """Per cell, the mean paired difference (points) to the ``reference`` row of the same
    other keys, with its 95% t interval over the seeds both have; ▲/▼ where the interval
    excludes zero. None when the table has no such row.
    """
    if not any(r.base == reference for r in table.rows):
        return None
    rows = []
    for row in table.rows:
        if row.method == "dense" or row.base == reference:
            continue
        ref = table.reference_row(row, reference)
        if ref is None:
            continue
        cells = []
        for density in table.densities:
            diff = stats.paired_difference(row.cell(density).by_seed, ref.cell(density).by_seed)
            cells.append(difference_text(diff))
        rows.append([row.label, *cells])
    if not rows:
        return None
    headers = [f"vs {reference}", *(f"d={d:g}" for d in table.densities)]
    aligns = ("left", *("right" for _ in table.densities))
    return tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )


def difference_text(diff: stats.Interval | None) -> str:
    """``+1.23 ± 0.45 ▲ (n=3)``: a paired difference in points, its interval, its sign when
    the interval excludes zero, and the seeds behind it; ``–`` when there is none."""
    if diff is None:
        return "–"
    text = f"{round(100 * diff.estimate, DECIMALS) + 0.0:+.{DECIMALS}f}"  # no "-0.00"
    half = diff.half_width
    if half is not None:
        text += f" ± {100 * half:.{DECIMALS}f}"
    if diff.excludes_zero():
        text += " ▲" if diff.estimate > 0 else " ▼"
    return text + f" (n={diff.n})"


def _problem_lines(
    entries: Sequence[Entry], runs_link: str, output_dir: Path | None = None
) -> list[str]:
    counts = {s: sum(1 for e in entries if e.status == s) for s in (*_PROBLEMS, PENDING)}
    if not any(counts.values()):
        return []
    parts = [f"{counts[s]} {s}" for s in _PROBLEMS if counts[s]]
    if counts[PENDING]:
        parts.append(f"{counts[PENDING]} not run yet")
    lines = [f"Not averaged in: {', '.join(parts)}."]
    problems = [e for e in entries if e.status in _PROBLEMS]
    for entry in problems[:MAX_LISTED]:
        link = runs_link
        if entry.runs_dir is not None and output_dir is not None:
            link = Path(os.path.relpath(entry.runs_dir, output_dir)).as_posix()
        lines.append(
            f"- `{entry.run_id}` {_describe(entry)}: **{entry.status}**: {_why(entry)} "
            f"([record]({link}/{entry.run_id}.json))"
        )
    if len(problems) > MAX_LISTED:
        lines.append(f"- … and {len(problems) - MAX_LISTED} more in `{runs_link}/`")
    return lines


def _describe(entry: Entry) -> str:
    spec = entry.spec
    if spec["method"] == "dense":
        what = "dense"
    elif spec["method"] == "static":
        what = f"static, d={spec['density']:g}"
    else:
        criterion = spec["criterion"]["name"] if spec.get("criterion") else "?"
        what = f"{criterion}, d={spec['density']:g}"
    return f"{what}, seed {spec['seed']}"


def _why(entry: Entry) -> str:
    record = entry.record or {}
    if entry.status == "failed":
        error = record.get("error") or {}
        message = " ".join(str(error.get("message", "")).split())
        return f"{error.get('type', 'error')}: {_clip(message)}"
    return _clip(" ".join(str(record.get("reason", "")).split()))


def _clip(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trained_entries(entries: Sequence[Entry]) -> list[Entry]:
    """The entries that train a model (all but overlap-at-initialisation runs, which have no
    accuracy to tabulate)."""
    return [e for e in entries if not e.spec.get("jaccard_at_init")]


def legend(style: Style) -> str:
    """What the cells, bold, marks and ranks of every table mean."""
    return (
        f"Cells: test accuracy (%) of the final model, {STATS[style.stat]}; `(k/n)`: only k "
        f"of the n seeds have a result; `{CHANCE_MARK}k`: k of the runs never left chance "
        "level (training collapsed; see the record's `health`); "
        f"`{WIDE_MARK}`: the cell's interval is too wide to rank (it holds the mean of every "
        "other sparse row of its column that left chance level). **Bold**: the best sparse "
        "method at that density, and every sparse method whose difference to it is not "
        "significant (95% t interval of the paired per-seed difference includes zero; "
        "Welch's interval when fewer than two seeds are shared; with one seed, only an "
        "equal mean ties). *avg rank*: mean over densities of the rank among the sparse "
        "rows (1 = best), with a 95% bootstrap interval (seeds resampled within each "
        "density, then densities; seeded from the values); the dense row is the reference "
        "and is not ranked. Failed, diverged, invalid and unfinished runs are counted under "
        "each table and never averaged in."
    )


# --- provenance --------------------------------------------------------------------------


def _joined(values: Iterable[Any]) -> str:
    distinct = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(distinct) if distinct else "unknown"


#: Widest value in a provenance row; longer ones continue on rows with an empty field.
PROVENANCE_WIDTH = 90


def _wrapped(field: str, parts: Sequence[str], sep: str = "; ") -> list[list[str]]:
    """``field``'s value as rows of at most :data:`PROVENANCE_WIDTH` characters, broken
    between ``parts`` (and inside a part only when it alone is too long)."""
    lines: list[str] = []
    for part in parts:
        pieces = textwrap.wrap(part, PROVENANCE_WIDTH) or [""]
        if lines and len(lines[-1]) + len(sep) + len(pieces[0]) <= PROVENANCE_WIDTH:
            lines[-1] += sep + pieces.pop(0)
        elif lines:
            lines[-1] += sep.rstrip()
        lines += pieces
    return [[field if i == 0 else "", line] for i, line in enumerate(lines or ["unknown"])]


def _torch_text(block: Mapping[str, Any]) -> str:
    """``2.14.1+cu130 (a CUDA 13.0 build, run on the CPU)``: the build and what ran it."""
    cuda = block.get("cuda")
    if not cuda:
        return f"{block.get('torch')} (CPU build)"
    device = str(block.get("device") or "")
    if device.startswith("cpu"):
        return f"{block.get('torch')} (a CUDA {cuda} build, run on the CPU)"
    return f"{block.get('torch')} (CUDA {cuda})"


def provenance_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """``[field, value]`` rows from the records' provenance and execution blocks, values
    wrapped at :data:`PROVENANCE_WIDTH` characters (continued on rows with no field)."""
    records = [e.record for e in entries if e.record is not None]
    prov = [r.get("provenance") or {} for r in records]
    plugins: dict[tuple[str, str], set[str]] = {}
    for block in prov:
        for plugin in block.get("plugins") or []:
            key = (str(plugin.get("distribution") or "-"), str(plugin.get("version") or "-"))
            plugins.setdefault(key, set()).add(str(plugin.get("name")))
    plugin_parts = [
        f"{dist} {version}: {', '.join(sorted(names))}"
        for (dist, version), names in sorted(plugins.items())
    ]
    torch_parts = sorted({_torch_text(p) for p in prov if p.get("torch")}) or ["unknown"]
    devices = sorted({str(p["device_name"]) for p in prov if p.get("device_name")})
    dates = sorted(str(p["date"])[:10] for p in prov if p.get("date"))
    date_text = (
        "unknown"
        if not dates
        else dates[0]
        if dates[0] == dates[-1]
        else (f"{dates[0]} to {dates[-1]}")
    )
    engines = _joined(p.get("engine") for p in prov)
    execution = [r.get("execution") or {} for r in records]
    executors = _joined(
        f"{x.get('executor')}, {x.get('workers')} worker{'s' if x.get('workers') != 1 else ''}"
        for x in execution
        if x.get("executor")
    )
    return [
        ["dstbench", _joined(p.get("dstbench") for p in prov)],
        *_wrapped("plugins", plugin_parts or ["unknown"]),
        *_wrapped("torch", torch_parts),
        ["python", _joined(p.get("python") for p in prov)],
        *_wrapped("device", devices or ["unknown"]),
        *_wrapped("executor", [executors]),
        ["engine", engines],
        ["date (UTC, from the records)", date_text],
    ]


# --- the document ------------------------------------------------------------------------


def leaderboard_markdown(
    results: Results,
    boards: Sequence[Board],
    secondary: Sequence[Board],
    plots: dict[str, str],
    output_dir: Path,
    style: Style | None = None,
    sweeps: dict[str, str] | None = None,
    movement: Sequence[Board] = (),
    timing: Sequence[Board] = (),
) -> str:
    """The whole leaderboard document.

    :param boards: boards of the final test accuracy.
    :param secondary: the same boards for the best-validation checkpoint's test accuracy.
    :param plots: board title -> PNG path relative to the markdown file.
    :param movement: the same boards for the mask movement (fraction of the initial active
        weights still active at the end), shown when the records have it.
    :param timing: the same boards for the measured training time per step, shown when
        given (``dstbench leaderboard --time``: a measured time differs from one run of a study
        to the next, so a leaderboard without it is the same bytes for the same results).
    """
    style = style or Style()
    runs_link = Path(os.path.relpath(results.runs_dir, output_dir)).as_posix()
    entries = results.entries
    counts = {s: sum(1 for e in entries if e.status == s) for s in ("ok", *_PROBLEMS, PENDING)}
    count_text = ", ".join(
        f"{n} {'not run yet' if s == PENDING else s}" for s, n in counts.items() if n
    )
    out = [f"# Leaderboard: {results.title}", ""]
    out.append("<!-- Generated by `dstbench leaderboard` from the run records; do not edit. -->")
    out.append("")
    if results.description:
        out += [results.description, ""]
    header = [*provenance_rows(entries), ["runs", f"{len(entries)} ({count_text})"]]
    header.append(["records", f"[`{runs_link}/`]({runs_link}/) (one JSON file per run id)"])
    out += [
        tabulate(header, headers=["provenance", ""], tablefmt="github", disable_numparse=True),
        "",
    ]
    if results.outside_suite:
        out += [
            f"{results.outside_suite} record(s) in `{runs_link}/` belong to no run of the "
            "current suite and are left out.",
            "",
        ]
    if results.untrusted:
        out += [
            f"{len(results.untrusted)} record(s) are not trusted and are left out (their runs "
            "count as not run; `dstbench suite` moves them to `quarantine/` and runs them "
            "again):",
            "",
            *(
                f"- `{Path(os.path.relpath(path, output_dir)).as_posix()}`: {why}"
                for path, why in results.untrusted
            ),
            "",
        ]
    at_init = len(entries) - len(trained_entries(entries))
    if at_init:
        out += [
            f"{at_init} overlap-at-initialisation run(s) (`jaccard_at_init`: one pruning step "
            "on the untrained network, no accuracy) are not in the tables; `dstbench analyze "
            "overlap` reads them.",
            "",
        ]
    out += [legend(style), ""]
    moved = {b.title: b for b in movement}
    timed = {b.title: b for b in timing}
    for board, second in zip(boards, secondary, strict=True):
        out += [f"## {board.title}", ""]
        board_entries = list({e.run_id: e for t in board.tables for e in t.entries}.values())
        out += [setup_markdown(board_entries), ""]
        if board.title in plots:
            axis = (sweeps or {}).get(board.title, "density")
            out += [
                f"![{board.title}: test accuracy vs {axis}]({plots[board.title]})",
                "",
                f"Plot: mean over seeds; band: {BANDS[style.stat]}, as in the tables.",
                "",
            ]
        moves = moved[board.title].tables if board.title in moved else [None] * len(board.tables)
        times = timed[board.title].tables if board.title in timed else [None] * len(board.tables)
        for table, table2, table3, table4 in zip(
            board.tables, second.tables, moves, times, strict=True
        ):
            heading = f"growth: {table.growth}" if table.growth else "baselines"
            out += [f"### {board.title}, {heading}", "", table_markdown(table, style), ""]
            paired = paired_markdown(table, style.reference)
            if paired is not None:
                out += [
                    f"Paired difference to {style.reference} (points; mean over the seeds "
                    "both rows have ± half-width of its 95% t interval; ▲/▼: the interval "
                    "excludes zero):",
                    "",
                    paired,
                    "",
                ]
            problems = _problem_lines(table.entries, runs_link, output_dir)
            if problems:
                out += [*problems, ""]
            if any(c.values for r in table2.rows for c in r.cells.values()):
                out += [
                    "<details><summary>Test accuracy (%) of the best-validation checkpoint"
                    "</summary>",
                    "",
                    table_markdown(table2, style),
                    "",
                    "</details>",
                    "",
                ]
            if table3 is not None and any(
                c.values for r in table3.rows if r.method == "dst" for c in r.cells.values()
            ):
                out += [
                    "<details><summary>Mask movement: % of the initial active weights still "
                    "active at the end (mean ± 95% t interval over seeds)</summary>",
                    "",
                    movement_markdown(table3),
                    "",
                    "</details>",
                    "",
                ]
            if table4 is not None and any(c.values for r in table4.rows for c in r.cells.values()):
                out += [
                    time_summary(table4.entries),
                    "",
                    time_markdown(table4),
                    "",
                    "</details>",
                    "",
                ]
    return "\n".join(out).rstrip("\n") + "\n"
