"""The ``dstbench`` command line.

Every subcommand is a module in this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``, listed in :mod:`dstbench.cli.commands`.
User errors (:class:`DstbenchError`) are printed as one line and exit with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from dstbench._version import __version__
from dstbench.cli.commands import COMMANDS
from dstbench.errors import DstbenchError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``dstbench: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. Every subcommand is listed; the arguments of ``only`` (a command
    name) are declared, or of every command when ``only`` is None. Commands are imported only
    when their arguments are declared, so ``dstbench --help`` imports none of them."""
    parser = _Parser(prog="dstbench", description="Benchmark harness for Dynamic Sparse Training.")
    parser.add_argument("--version", action="version", version=f"dstbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS.values():
        # argparse %-formats help strings (not descriptions)
        listed = command.help.replace("%", "%%")
        parsed = sub.add_parser(command.name, help=listed, description=command.help)
        if only is None or only == command.name:
            module = importlib.import_module(f"dstbench.cli.{command.module}")
            module.add_arguments(parsed)
            parsed.set_defaults(handler=module.run)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is one), if any."""
    for word in argv:
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dstbench`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(words)
    parser = build_parser(only=command or "")
    args = parser.parse_args(words)
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


def warn_untrusted(untrusted: Iterable[tuple[Any, str]]) -> None:
    """One warning line per record that is not trusted and is left out (``(path, why)``)."""
    for where, why in untrusted:
        sys.stderr.write(f"dstbench: warning: {where}: untrusted record ({why}); left out\n")
