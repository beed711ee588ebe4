"""``dstbench analyze``: run an analysis (a plugin component) on one or more results dirs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dstbench.analysis.report import write_report
from dstbench.cli import warn_untrusted
from dstbench.cli.commands import COMMANDS
from dstbench.errors import DstbenchError, choices_text, did_you_mean

NAME = "analyze"
HELP = COMMANDS["analyze"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The analysis name, its positional parameters and directories, output and --list."""
    parser.add_argument("analysis", metavar="NAME", nargs="?", help="the analysis to run")
    parser.add_argument(
        "args",
        nargs="*",
        metavar="ARG",
        help="the analysis' positional parameters (sweep: KEY), then one or more results "
        "directories (merged by run id)",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="FILE",
        help="markdown file to write (default: DIR/<analysis>.md); figures go next to it",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="set a parameter of the analysis (repeatable)",
    )
    parser.add_argument(
        "--all-records",
        action="store_true",
        help="use every record in DIR, not only the runs of the suite's current matrix",
    )
    parser.add_argument("--list", action="store_true", help="list the available analyses")


def _analyses() -> Any:
    from dstbench.analysis.components import get_analyses

    return get_analyses()


def list_text(analyses: Any) -> str:
    """One line per analysis: name, positional parameters, description, plugin."""
    lines = []
    for name, info in analyses.items():
        usage = " ".join([name, *(p.upper() for p in info.positional), "DIR..."])
        lines.append(f"{usage:<28} {info.description} [{info.plugin}]")
    return "\n".join(lines)


def _params(pairs: list[str]) -> dict[str, Any]:
    from dstbench.resolve import parse_value

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise DstbenchError(f"--param: expected K=V, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def run(args: argparse.Namespace) -> int:
    """Run the analysis and write its report."""
    from dstbench.leaderboard.data import load_many

    analyses = _analyses()
    if args.list or args.analysis is None:
        print(list_text(analyses))
        return 0
    if args.analysis not in analyses:
        msg = (
            f"unknown analysis {args.analysis!r}{did_you_mean(args.analysis, analyses)}; "
            f"available: {choices_text(analyses)}"
        )
        raise DstbenchError(msg)
    info = analyses[args.analysis]
    positional = list(info.positional)
    if len(args.args) <= len(positional):
        wanted = " ".join([*(p.upper() for p in positional), "DIR"])
        raise DstbenchError(f"analyze {info.name}: expected {wanted} [DIR...]")
    given = dict(zip(positional, args.args[: len(positional)], strict=True))
    dirs = args.args[len(positional) :]
    params = info.resolve_params({**_params(args.param), **given})
    results = load_many(dirs, all_records=args.all_records)
    warn_untrusted(results.untrusted)
    output = Path(args.output) if args.output else Path(dirs[0]) / f"{info.name}.md"
    report = info.fn(results, stem=output.stem, **params)
    path = write_report(report, output)
    extra = f" and {len(report.figures)} figure(s) next to it" if report.figures else ""
    print(f"wrote {path}{extra}")
    return 0
