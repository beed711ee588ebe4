"""``dstbench leaderboard``: markdown tables and plots from a directory of run records."""

from __future__ import annotations

import argparse
from pathlib import Path

from dstbench.cli import warn_untrusted
from dstbench.cli.commands import COMMANDS
from dstbench.io import check_output_file
from dstbench.leaderboard import (
    DEFAULT_NAME,
    render_leaderboard,
    stale_reasons,
    write_leaderboard,
)
from dstbench.leaderboard.render import DEFAULT_REFERENCE, STATS

NAME = "leaderboard"
HELP = COMMANDS["leaderboard"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The results directory, the output file and ``--check``."""
    parser.add_argument(
        "directories",
        nargs="+",
        metavar="DIR",
        help="a suite's results (results/<suite>) or a folder of records; several are merged "
        "(records of the same run id counted once)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help=f"markdown file to write (default: DIR/{DEFAULT_NAME}); plots go next to it",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when FILE differs from what the records give now, a plot "
        "is missing, or a record is not trusted",
    )
    parser.add_argument(
        "--all-records",
        action="store_true",
        help="use every record in DIR, not only the runs of the suite's current matrix",
    )
    parser.add_argument(
        "--stat",
        choices=tuple(STATS),
        default="t",
        help="spread shown in cells: t (95%% Student-t interval, default), bootstrap "
        "(95%% percentile bootstrap) or std (sample standard deviation)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="ROW",
        help=f"row the paired per-seed differences are computed against "
        f"(default: {DEFAULT_REFERENCE}, when present)",
    )
    parser.add_argument(
        "--time",
        action="store_true",
        help="add a training-time table under each table: ms per step, and x the dense run's "
        "(left out by default: measured times differ between re-runs of a study)",
    )


def run(args: argparse.Namespace) -> int:
    """Write (or check) the leaderboard."""
    dirs = args.directories
    output = Path(args.output) if args.output else Path(dirs[0]) / DEFAULT_NAME
    options = {
        "all_records": args.all_records,
        "stat": args.stat,
        "reference": args.reference,
        "show_time": args.time,
    }
    shown = " ".join(dirs)
    if args.check:
        reasons = stale_reasons(dirs, output, **options)
        if reasons:
            for reason in reasons:
                print(reason)
            print(
                f"{output} is stale: it differs from the records in {shown}; "
                f"regenerate it with: dstbench leaderboard {shown} -o {output}"
            )
            return 1
        print(f"{output} is up to date")
        return 0
    check_output_file(output)
    path = write_leaderboard(dirs, output, **options)
    board = render_leaderboard(dirs, output, **options)
    warn_untrusted(board.untrusted)
    plots = board.plots
    print(f"wrote {path}" + (f" and {len(plots)} plot(s) (PNG + SVG) next to it" if plots else ""))
    return 0
