"""A plugin whose criterion starts a process it never waits for (it inherits stdout)."""

from __future__ import annotations

import subprocess

from dstbench import hookimpl

#: How long the forgotten process would live: long enough to hang a pipe past any test.
SECONDS = "173"


@hookimpl
def dstbench_register_criteria(register):
    def spawns(ctx):
        """|w|, and a forgotten `sleep` holding the output open."""
        subprocess.Popen(["sleep", SECONDS])
        return ctx.weight.abs()

    register("spawns", spawns)
