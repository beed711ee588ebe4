"""``dstbench leaderboard``: markdown tables and plots from a directory of run records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dstbench.io import check_output_file
from dstbench.leaderboard import (
    DEFAULT_NAME,
    render_leaderboard,
    stale_reasons,
    write_leaderboard,
)

NAME = "leaderboard"
HELP = "Write the leaderboard (markdown + PNG/SVG plots) of a results directory, or check it."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The results directory, the output file and ``--check``."""
    parser.add_argument(
        "directory",
        metavar="DIR",
        help="a suite's results (results/<suite>) or a folder of records",
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


def run(args: argparse.Namespace) -> int:
    """Write (or check) the leaderboard."""
    output = Path(args.output) if args.output else Path(args.directory) / DEFAULT_NAME
    if args.check:
        reasons = stale_reasons(args.directory, output, all_records=args.all_records)
        if reasons:
            for reason in reasons:
                print(reason)
            print(
                f"{output} is stale; regenerate it with: "
                f"dstbench leaderboard {args.directory} -o {output}"
            )
            return 1
        print(f"{output} is up to date")
        return 0
    check_output_file(output)
    path = write_leaderboard(args.directory, output, all_records=args.all_records)
    board = render_leaderboard(args.directory, output, all_records=args.all_records)
    for where, why in board.untrusted:
        sys.stderr.write(f"dstbench: warning: {where}: untrusted record ({why}); left out\n")
    plots = board.plots
    print(f"wrote {path}" + (f" and {len(plots)} plot(s) (PNG + SVG) next to it" if plots else ""))
    return 0
