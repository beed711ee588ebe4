"""Leaderboard markdown: a provenance header, then per setup a plot and a table per growth.

Everything shown comes from the records (versions, devices and dates included) and is laid out
in a fixed order with fixed number formats, so the same records always give the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from dstbench.leaderboard.data import PENDING, Entry, Results
from dstbench.leaderboard.table import DECIMALS, Board, CellStats, Table

#: Problem runs listed under a table before "... and N more".
MAX_LISTED = 20
_PROBLEMS = ("failed", "diverged", "invalid")
#: The metric of the second table under each growth method.
SECONDARY_METRIC = "best_val_test_accuracy"


def cell_text(cell: CellStats, *, bold: bool) -> str:
    """``97.78 ± 0.31``, with ``(k/n)`` when only k of n seeds have a result."""
    mean = cell.mean
    if mean is None:
        return "–"
    text = f"{100 * mean:.{DECIMALS}f}"
    std = cell.std
    if std is not None:
        text += f" ± {100 * std:.{DECIMALS}f}"
    if bold:
        text = f"**{text}**"
    if len(cell.values) < cell.expected:
        text += f" ({len(cell.values)}/{cell.expected})"
    return text


def table_markdown(table: Table) -> str:
    """The GitHub-markdown table of one growth method."""
    headers = ["method", *(f"d={d:g}" for d in table.densities), "avg rank"]
    rows = []
    partial = False
    for row in table.rows:
        cells = []
        for density in table.densities:
            cell = row.cell(density)
            best = table.best(density)
            bold = row.method != "dense" and best is not None and cell.shown() == best
            cells.append(cell_text(cell, bold=bold))
        average = row.average_rank
        if average is None:
            rank = "–" if row.method != "dense" else "ref."
        else:
            rank = f"{average:.2f}"
            if len(row.ranks) < len(table.densities):
                rank += "*"
                partial = True
        rows.append([row.label, *cells, rank])
    aligns = ("left", *("right" for _ in table.densities), "right")
    text = tabulate(
        rows, headers=headers, tablefmt="github", colalign=aligns, disable_numparse=True
    )
    if partial:
        text += "\n\n\\* ranked on the densities where the row has results only."
    return text


def _problem_lines(entries: Sequence[Entry], runs_link: str) -> list[str]:
    counts = {s: sum(1 for e in entries if e.status == s) for s in (*_PROBLEMS, PENDING)}
    if not any(counts.values()):
        return []
    parts = [f"{counts[s]} {s}" for s in _PROBLEMS if counts[s]]
    if counts[PENDING]:
        parts.append(f"{counts[PENDING]} not run yet")
    lines = [f"Not averaged in: {', '.join(parts)}."]
    problems = [e for e in entries if e.status in _PROBLEMS]
    for entry in problems[:MAX_LISTED]:
        lines.append(
            f"- `{entry.run_id}` {_describe(entry)}: **{entry.status}**: {_why(entry)} "
            f"([record]({runs_link}/{entry.run_id}.json))"
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


# --- provenance --------------------------------------------------------------------------


def _joined(values: Iterable[Any]) -> str:
    distinct = sorted({str(v) for v in values if v not in (None, "")})
    return ", ".join(distinct) if distinct else "unknown"


def provenance_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """``[field, value]`` rows from the records' provenance and execution blocks."""
    records = [e.record for e in entries if e.record is not None]
    prov = [r.get("provenance") or {} for r in records]
    plugins: dict[tuple[str, str], set[str]] = {}
    for block in prov:
        for plugin in block.get("plugins") or []:
            key = (str(plugin.get("distribution") or "-"), str(plugin.get("version") or "-"))
            plugins.setdefault(key, set()).add(str(plugin.get("name")))
    plugin_text = "; ".join(
        f"{dist} {version}: {', '.join(sorted(names))}"
        for (dist, version), names in sorted(plugins.items())
    )
    torch_text = _joined(
        f"{p.get('torch')} (CUDA {p.get('cuda') or 'none'})" for p in prov if p.get("torch")
    )
    dates = sorted(str(p["date"])[:10] for p in prov if p.get("date"))
    date_text = (
        "unknown"
        if not dates
        else dates[0]
        if dates[0] == dates[-1]
        else (f"{dates[0]} to {dates[-1]}")
    )
    execution = [r.get("execution") or {} for r in records]
    executors = _joined(
        f"{x.get('executor')}, {x.get('workers')} worker{'s' if x.get('workers') != 1 else ''}"
        for x in execution
        if x.get("executor")
    )
    return [
        ["dstbench", _joined(p.get("dstbench") for p in prov)],
        ["plugins", plugin_text or "unknown"],
        ["torch", torch_text],
        ["python", _joined(p.get("python") for p in prov)],
        ["device", _joined(p.get("device_name") for p in prov)],
        ["executor", executors],
        ["date (UTC, from the records)", date_text],
    ]


# --- the document ------------------------------------------------------------------------


def leaderboard_markdown(
    results: Results,
    boards: Sequence[Board],
    secondary: Sequence[Board],
    plots: dict[str, str],
    output_dir: Path,
) -> str:
    """The whole leaderboard document.

    :param boards: boards of the final test accuracy.
    :param secondary: the same boards for the best-validation checkpoint's test accuracy.
    :param plots: board title -> PNG path relative to the markdown file.
    """
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
    out += [
        "Cells: test accuracy (%) of the final model, mean ± sample standard deviation over "
        "seeds; `(k/n)`: only k of the n seeds have a result. **Bold**: the best sparse "
        "method at that density (ties share it). *avg rank*: mean over densities of the "
        "rank among the sparse rows (1 = best); the dense row is the reference and is not "
        "ranked. Failed, diverged, invalid and unfinished runs are counted under each table "
        "and never averaged in.",
        "",
    ]
    for board, second in zip(boards, secondary, strict=True):
        out += [f"## {board.title}", ""]
        if board.title in plots:
            out += [f"![{board.title}: test accuracy vs density]({plots[board.title]})", ""]
        for table, table2 in zip(board.tables, second.tables, strict=True):
            heading = f"growth: {table.growth}" if table.growth else "baselines"
            out += [f"### {board.title}, {heading}", "", table_markdown(table), ""]
            problems = _problem_lines(table.entries, runs_link)
            if problems:
                out += [*problems, ""]
            if any(c.values for r in table2.rows for c in r.cells.values()):
                out += [
                    "<details><summary>Test accuracy (%) of the best-validation checkpoint"
                    "</summary>",
                    "",
                    table_markdown(table2),
                    "",
                    "</details>",
                    "",
                ]
    return "\n".join(out).rstrip("\n") + "\n"
