"""``dstbench compare``: cell-by-cell differences between two result sets."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from dstbench.cli import warn_untrusted
from dstbench.cli.commands import COMMANDS
from dstbench.io import write_text_atomic

NAME = "compare"
HELP = COMMANDS["compare"].help


def _points(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of points >= 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The two directories, output and the regression gate."""
    parser.add_argument("a", metavar="A", help="results directory before (the baseline)")
    parser.add_argument("b", metavar="B", help="results directory after")
    parser.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="write the markdown here"
    )
    parser.add_argument(
        "--fail-on-regression",
        type=_points,
        default=None,
        metavar="X",
        help="exit 1 when a cell drops by more than X points with a 95%% interval excluding 0",
    )
    parser.add_argument(
        "--all-records",
        action="store_true",
        help="use every record in A and B, not only the runs of their suites' matrices",
    )


def run(args: argparse.Namespace) -> int:
    """Print (or write) the comparison; exit 1 on a regression when asked."""
    from dstbench.analysis.compare import compare, comparison_markdown, summary
    from dstbench.leaderboard.data import load_results

    a = load_results(args.a, all_records=args.all_records)
    b = load_results(args.b, all_records=args.all_records)
    warn_untrusted([*a.untrusted, *b.untrusted])
    comparison = compare(a, b)
    markdown = comparison_markdown(comparison, args.fail_on_regression)
    if args.output:
        write_text_atomic(Path(args.output), markdown)
        print(f"wrote {args.output}")
    else:
        print(markdown, end="")
    print(summary(comparison, args.fail_on_regression))
    if args.fail_on_regression is not None and comparison.regressions(args.fail_on_regression):
        return 1
    return 0
