"""A plugin with a criterion that never returns (a stuck plugin in a batched group)."""

from __future__ import annotations

import time

from dstbench import hookimpl


@hookimpl
def dstbench_register_criteria(register):
    def hangs(ctx):
        """Never answers."""
        while True:
            time.sleep(0.05)

    register("hangs", hangs)
