"""The built-in analyses, as a plugin: the paper's figures and tables from run records.

An analysis is ``fn(results, *, stem, **params) -> Report``: ``results`` is the
:class:`dstbench.leaderboard.Results` of the directories given (merged by run id), ``stem``
the output file's stem (figure file names start with it), and the returned
:class:`dstbench.analysis.report.Report` holds the markdown and the PNG figures it links to.
``dstbench analyze NAME DIR...`` runs one by name.
"""

from __future__ import annotations

from dstbench.analysis.jaccard import overlap_report
from dstbench.analysis.report import Report
from dstbench.analysis.sweep import sweep_report
from dstbench.analysis.winners import winners_report
from dstbench.contracts.components import Register
from dstbench.hookspecs import hookimpl
from dstbench.leaderboard.data import Results


def overlap(results: Results, *, stem: str) -> Report:
    """Jaccard matrices of the criteria's pruned sets, per layer and pooled (Fig. 6)."""
    return overlap_report(results, stem=stem)


def update_period(results: Results, *, stem: str) -> Report:
    """Accuracy against the update period ΔT (log axis) per criterion and density (Fig. 4)."""
    return sweep_report(
        results,
        "update_period",
        stem=stem,
        log=True,
        heading=f"# Accuracy vs the update period ΔT: {results.title}",
    )


def winners(results: Results, *, stem: str) -> Report:
    """Per density, in how many setups each criterion is best, ties within CI (Fig. 3)."""
    return winners_report(results, stem=stem)


def sweep(results: Results, *, stem: str, key: str = "") -> Report:
    """Accuracy against any swept spec key (update_period, criterion.lam, a plugin's, ...)."""
    return sweep_report(results, key, stem=stem)


@hookimpl
def dstbench_register_analyses(register: Register) -> None:
    """Register overlap, update-period, winners and sweep."""
    register("overlap", overlap)
    register("update-period", update_period)
    register("winners", winners)
    register("sweep", sweep, positional=("key",))
