"""Which pruning criterion is best at each density, across setups (the paper's Fig. 3).

A *setup* is one leaderboard table: a model, a dataset and a growth method (rows with other
varying keys, e.g. ``magnitude (update_period=25)``, compete as rows of their own). In each
setup and density the DST rows are compared as the leaderboard's bold is decided
(:meth:`dstbench.leaderboard.table.Table.best_rows`): the highest mean, and every row whose
paired 95% interval of the difference to it includes zero. A setup with one such row is a
*win* for it; with several, a *tie* for each. Static and dense baselines do not compete.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tabulate import tabulate

from dstbench.analysis.report import Report, figure_name
from dstbench.errors import DstbenchError
from dstbench.leaderboard.data import Results
from dstbench.leaderboard.figures import new_figure, palette, png_bytes
from dstbench.leaderboard.render import FEW_SEEDS, WIDE_MARK
from dstbench.leaderboard.table import Table, build_boards


@dataclass
class Tally:
    """Per density: row -> sole wins, shared (tied) wins, and setups it competed in."""

    wins: dict[float, dict[str, int]] = field(default_factory=dict)
    ties: dict[float, dict[str, int]] = field(default_factory=dict)
    setups: dict[float, int] = field(default_factory=dict)
    #: density -> setup -> the winning rows (for the detail table), ``‡`` marking those too
    #: wide to rank (:meth:`Table.too_wide`).
    detail: dict[float, dict[str, list[str]]] = field(default_factory=dict)
    #: density -> setup -> the fewest seeds behind a DST cell there.
    seeds: dict[float, dict[str, int]] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)


def _dst_only(table: Table) -> Table:
    rows = [r for r in table.rows if r.method == "dst"]
    return Table(table.growth, table.densities, rows, table.entries)


def tally(results: Results) -> Tally:
    """Count wins and ties per density over every setup of ``results``."""
    out = Tally()
    for board in build_boards(results.entries):
        for table in board.tables:
            dst = _dst_only(table)
            setup = f"{board.title}, growth {table.growth}" if table.growth else board.title
            for row in dst.rows:
                if row.label not in out.rows:
                    out.rows.append(row.label)
            for density in dst.densities:
                best = dst.best_rows(density)
                if not best:
                    continue
                out.setups[density] = out.setups.get(density, 0) + 1
                counter = out.wins if len(best) == 1 else out.ties
                for label in best:
                    per = counter.setdefault(density, {})
                    per[label] = per.get(label, 0) + 1
                wide = table.too_wide(density)
                ordered = [
                    r.label + (f" {WIDE_MARK}" if r.label in wide else "")
                    for r in dst.rows
                    if r.label in best
                ]
                out.detail.setdefault(density, {})[setup] = ordered
                counts = [len(r.cell(density).values) for r in dst.rows if r.cell(density).values]
                out.seeds.setdefault(density, {})[setup] = min(counts)
    if not out.setups:
        msg = f"{results.title}: no finished DST run to compare (winners need DST criteria)"
        raise DstbenchError(msg)
    return out


def winners_png(counts: Tally, title: str) -> bytes:
    """Stacked bars per density: sole wins (solid) and ties (hatched) of each row."""
    densities = sorted(counts.setups)
    rows = counts.rows
    figure = new_figure(max(5.0, 0.9 * len(densities) * max(1, len(rows)) ** 0.5 + 3), 4.0)
    ax = figure.subplots()
    colors = palette(rows)
    width = 0.8 / max(len(rows), 1)
    for i, label in enumerate(rows):
        xs = [d_index + (i - (len(rows) - 1) / 2) * width for d_index in range(len(densities))]
        wins = [counts.wins.get(d, {}).get(label, 0) for d in densities]
        ties = [counts.ties.get(d, {}).get(label, 0) for d in densities]
        ax.bar(xs, wins, width, color=colors[label], label=label)
        ax.bar(
            xs,
            ties,
            width,
            bottom=wins,
            color=colors[label],
            alpha=0.35,
            hatch="//",
            edgecolor=colors[label],
            linewidth=0,
        )
    ax.set_xticks(range(len(densities)), [f"{d:g}" for d in densities])
    ax.set_xlabel("density")
    ax.set_ylabel("setups where best (hatched: tied)")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return png_bytes(figure)


def winners_report(results: Results, *, stem: str = "winners") -> Report:
    """Per density, in how many setups each criterion is best (ties within CI as ties)."""
    counts = tally(results)
    densities = sorted(counts.setups)
    rows = []
    for label in counts.rows:
        cells = []
        for density in densities:
            wins = counts.wins.get(density, {}).get(label, 0)
            ties = counts.ties.get(density, {}).get(label, 0)
            cells.append(f"{wins}" + (f" (+{ties} tied)" if ties else ""))
        total_wins = sum(counts.wins.get(d, {}).get(label, 0) for d in densities)
        total_ties = sum(counts.ties.get(d, {}).get(label, 0) for d in densities)
        cells.append(f"{total_wins}" + (f" (+{total_ties} tied)" if total_ties else ""))
        rows.append([label, *cells])
    rows.append(
        [
            "*setups compared*",
            *(str(counts.setups[d]) for d in densities),
            str(sum(counts.setups.values())),
        ]
    )
    headers = ["criterion", *(f"d={d:g}" for d in densities), "all"]
    table = tabulate(
        rows,
        headers=headers,
        tablefmt="github",
        colalign=("left", *("right" for _ in headers[1:])),
        disable_numparse=True,
    )
    name = figure_name(stem, results.title)
    out = [
        f"# Best criterion per density: {results.title}",
        "",
        "<!-- Generated by `dstbench analyze winners` from the run records; do not edit. -->",
        "",
        "A setup is a model, dataset and growth method. In each setup and density the best "
        "DST row is the highest mean test accuracy together with every row whose 95% t "
        "interval of the paired per-seed difference to it includes zero (Welch's interval "
        "when fewer than two seeds are shared). `k`: sole best in k setups; `(+t tied)`: best "
        "together with others in t more. Static and dense baselines do not compete. Per "
        f"setup below: `{WIDE_MARK}` marks a best row whose interval is too wide to rank (it "
        "holds the mean of every other row of its column that left chance level), and "
        f"*seeds per cell* says how few seeds back the ties (fewer than {FEW_SEEDS}: read a "
        "tie as *not separated*).",
        "",
        f"![best criterion per density]({name})",
        "",
        table,
        "",
        "<details><summary>Per setup</summary>",
        "",
    ]
    detail_rows = []
    for density in densities:
        for setup, best in sorted(counts.detail[density].items()):
            seeds = counts.seeds[density][setup]
            detail_rows.append([f"{density:g}", setup, ", ".join(best), str(seeds)])
    out += [
        tabulate(
            detail_rows,
            headers=["density", "setup", "best (ties within CI)", "seeds per cell"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "</details>",
    ]
    figures = {name: winners_png(counts, f"best criterion per density: {results.title}")}
    return Report("\n".join(out).rstrip("\n") + "\n", figures)
