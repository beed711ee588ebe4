"""``dstbench status``: done / running / pending / failed per setup, from store and scheduler."""

from __future__ import annotations

import argparse
from typing import Any

from tabulate import tabulate

from dstbench.cli import warn_plugin_failures
from dstbench.cli.commands import COMMANDS
from dstbench.plugins import get_plugins
from dstbench.suite.loader import load_suite
from dstbench.suite.status import suite_status
from dstbench.suite.store import RunStore

NAME = "status"
HELP = COMMANDS["status"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file and its results directory."""
    parser.add_argument("file", metavar="FILE", help="suite file, e.g. suites/quick.toml")
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="DIR",
        help="results directory (default: results/<suite name>)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the status table; exit 0."""
    warn_plugin_failures()
    registry = get_plugins().registry
    suite = load_suite(args.file, registry)
    store = RunStore(args.output if args.output is not None else suite.default_output())
    status = suite_status(suite, store, registry)
    table = status.table()
    columns = status.columns
    rows: list[list[Any]] = [
        [setup, sum(row.values()), *(row[c] for c in columns)] for setup, row in table.items()
    ]
    if len(rows) > 1:
        totals = [sum(r[i] for r in rows) for i in range(1, len(columns) + 2)]
        rows.append(["all", *totals])
    print(tabulate(rows, headers=["setup", "runs", *columns], disable_numparse=True))
    for note in status.notes:
        print(note)
    return 0
