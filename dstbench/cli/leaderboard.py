"""``dstbench leaderboard``: markdown tables and plots from a directory of run records."""

from __future__ import annotations

import argparse
from pathlib import Path

from dstbench.leaderboard import DEFAULT_NAME, is_stale, render_leaderboard, write_leaderboard

NAME = "leaderboard"
HELP = "Write the leaderboard (markdown + PNG plots) of a results directory, or check it."


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
        help="write nothing; exit 1 when FILE differs from what the records give now",
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
        if is_stale(args.directory, output, all_records=args.all_records):
            print(
                f"{output} is stale: it differs from the records in {args.directory}; "
                f"regenerate it with: dstbench leaderboard {args.directory} -o {output}"
            )
            return 1
        print(f"{output} is up to date")
        return 0
    path = write_leaderboard(args.directory, output, all_records=args.all_records)
    plots = render_leaderboard(args.directory, output, all_records=args.all_records).plots
    print(f"wrote {path}" + (f" and {len(plots)} plot(s) next to it" if plots else ""))
    return 0
