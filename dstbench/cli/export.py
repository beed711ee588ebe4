"""``dstbench export``: one flat row per run, as CSV, JSON lines or Parquet."""

from __future__ import annotations

import argparse
from pathlib import Path

from dstbench.analysis.export import FORMATS
from dstbench.cli import warn_untrusted
from dstbench.cli.commands import COMMANDS

NAME = "export"
HELP = COMMANDS["export"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Directories, format and output."""
    parser.add_argument(
        "directories", nargs="+", metavar="DIR", help="results directories (merged by run id)"
    )
    parser.add_argument("--format", choices=FORMATS, default="csv", help="default: csv")
    parser.add_argument(
        "-o", "--output", default=None, metavar="FILE", help="default: DIR/runs.<format>"
    )
    parser.add_argument(
        "--all-records",
        action="store_true",
        help="use every record in DIR, not only the runs of the suite's current matrix",
    )


def run(args: argparse.Namespace) -> int:
    """Write the export."""
    from dstbench.analysis.export import export
    from dstbench.leaderboard.data import load_many

    results = load_many(args.directories, all_records=args.all_records)
    warn_untrusted(results.untrusted)
    output = Path(args.output or Path(args.directories[0]) / f"runs.{args.format}")
    path = export(results.entries, args.format, output)
    print(f"wrote {path} ({len(results.entries)} runs)")
    return 0
