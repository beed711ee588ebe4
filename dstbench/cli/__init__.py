"""The ``dstbench`` command line.

Every subcommand is a module in this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. User errors (:class:`DstbenchError`) are
printed as one line and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from dstbench._version import __version__
from dstbench.errors import DstbenchError

#: Subcommand modules, in the order ``dstbench --help`` lists them.
COMMANDS = (
    "run",
    "suite",
    "status",
    "leaderboard",
    "analyze",
    "compare",
    "export",
    "plugins",
    "check_plugin",
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``dstbench: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available subcommand."""
    parser = _Parser(prog="dstbench", description="Benchmark harness for Dynamic Sparse Training.")
    parser.add_argument("--version", action="version", version=f"dstbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"dstbench.cli.{name}")
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dstbench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DstbenchError as exc:
        # One line per problem (a suite may report each missing dataset on its own line).
        for line in str(exc).splitlines() or [type(exc).__name__]:
            sys.stderr.write(f"dstbench: error: {line}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("dstbench: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`dstbench plugins | head`): not an error of ours. Point
        # stdout at /dev/null so that the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


def warn_plugin_failures() -> None:
    """Print one warning line per plugin that failed to load (commands call this once)."""
    from dstbench.plugins import get_plugins

    for record in get_plugins().failures():
        source = f" ({record.distribution} {record.version})" if record.distribution else ""
        sys.stderr.write(
            f"dstbench: warning: plugin {record.name!r}{source} failed: {record.error}\n"
        )
