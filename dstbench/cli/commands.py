"""The table of subcommands: name, module and one-line help.

It lives apart from the commands' modules so that ``dstbench --help`` and ``--version`` list the
commands without importing any of them (some load torch, about 2 s).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One subcommand."""

    #: What the user types (``check-plugin``).
    name: str
    #: Its module in :mod:`dstbench.cli` (``check_plugin``), imported only when it runs.
    module: str
    help: str


#: Every subcommand, in the order ``dstbench --help`` lists them.
_ORDERED: tuple[Command, ...] = (
    Command(
        "run", "run", "Train one sparse (or dense/static baseline) run and write its JSON record."
    ),
    Command(
        "suite",
        "suite",
        "Run a suite file (TOML): every run of its matrix, in parallel, resuming where it left.",
    ),
    Command(
        "status",
        "status",
        "Show where a suite stands: done, running, pending, failed and to run, per setup.",
    ),
    Command(
        "leaderboard",
        "leaderboard",
        "Write the leaderboard (markdown + PNG/SVG plots) of a results directory, or check it.",
    ),
    Command(
        "analyze",
        "analyze",
        "Run an analysis (overlap, update-period, winners, sweep KEY, or a plugin's) on results.",
    ),
    Command(
        "compare",
        "compare",
        "Compare two result sets (before/after): differences of means with 95% intervals.",
    ),
    Command(
        "export",
        "export",
        "Export a results directory as one flat row per run (csv, jsonl, parquet).",
    ),
    Command("plugins", "plugins", "List plugins, their versions and what they registered."),
    Command(
        "check-plugin",
        "check_plugin",
        "Check that a plugin's components honour dstbench's contracts (the conformance kit).",
    ),
)

COMMANDS: dict[str, Command] = {c.name: c for c in _ORDERED}
