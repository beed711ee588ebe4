"""Conformance checks of analyses: what ``dstbench analyze`` needs from one.

An analysis is run on two small result sets made here: one with finished runs of two criteria
over two seeds (accuracies only), and one whose only run failed. On each it must return a
:class:`dstbench.analysis.report.Report` (markdown text, PNG figures by plain file name) or
raise :class:`dstbench.DstbenchError` (the one-line "these records lack what I need"), never
another exception; the same records must give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dstbench.analysis.report import Report
from dstbench.conformance._collect import Collector, error_text
from dstbench.conformance.report import Check
from dstbench.conformance.selection import metadata_checks
from dstbench.errors import DstbenchError
from dstbench.leaderboard.data import Entry, Results
from dstbench.registry import ComponentInfo

_PNG = b"\x89PNG"


def _spec(criterion: str, seed: int) -> dict[str, Any]:
    return {
        "model": {"name": "mlp", "params": {}},
        "dataset": {"name": "digits", "params": {}},
        "method": "dst",
        "criterion": {"name": criterion, "params": {}},
        "growth": {"name": "gradient", "params": {}},
        "density": 0.1,
        "seed": seed,
        "update_period": 50,
        "prune_fraction": 0.5,
    }


def sample_results() -> dict[str, Results]:
    """Two small result sets an analysis must cope with."""
    entries = []
    for criterion, base in (("magnitude", 0.9), ("snip", 0.8)):
        for seed in (0, 1):
            spec = _spec(criterion, seed)
            run_id = f"{criterion}-{seed}"
            metrics = {"test_accuracy": base + 0.01 * seed, "best_val_test_accuracy": base}
            record = {"run_id": run_id, "status": "ok", "spec": spec, "metrics": metrics}
            entries.append(Entry(run_id, spec, "ok", record))
    failed_spec = _spec("magnitude", 0)
    failed = Entry("failed-0", failed_spec, "failed", {"status": "failed", "spec": failed_spec})
    return {
        "finished runs": Results("conformance", "", entries, Path(".")),
        "a failed run only": Results("conformance", "", [failed], Path(".")),
    }


def check_analysis(info: ComponentInfo, *, params: Mapping[str, Any] | None = None) -> list[Check]:
    """The metadata checks, then the analysis on :func:`sample_results`."""
    resolved = info.resolve_params(params)
    c = Collector()
    returns = "returns a Report or raises DstbenchError"
    figures = "figures are PNG bytes under plain file names"
    same = "is deterministic"
    for case, results in sample_results().items():
        try:
            first = info.fn(results, stem="check", **resolved)
            second = info.fn(results, stem="check", **resolved)
        except DstbenchError:
            c.ok(returns, f"{case}: DstbenchError")
            continue
        except Exception as exc:
            c.fail(
                returns,
                f"{case}: {error_text(exc)}",
                "raise dstbench.DstbenchError with one line when the records lack what the "
                "analysis needs; anything else is reported as a bug",
            )
            continue
        if not isinstance(first, Report) or not isinstance(first.markdown, str):
            c.fail(
                returns,
                f"{case}: returned {type(first).__name__}",
                "return dstbench.analysis.report.Report(markdown, {name: png_bytes})",
            )
            continue
        c.ok(returns)
        bad = [
            name
            for name, data in first.figures.items()
            if "/" in name or not isinstance(data, bytes) or not data.startswith(_PNG)
        ]
        if bad:
            c.fail(figures, f"{case}: {bad[0]!r}", "name figures like f'{stem}-x.png'; PNG bytes")
        else:
            c.ok(figures)
        if first != second:
            c.fail(same, case, "seed any randomness from the data; no dates in the output")
        else:
            c.ok(same)
    return [*metadata_checks(info), *c.checks()]
