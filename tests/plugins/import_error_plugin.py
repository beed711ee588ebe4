"""A plugin whose import fails (a missing dependency)."""

from __future__ import annotations

import dstbench_no_such_dependency  # noqa: F401 - the point of this plugin

from dstbench import hookimpl


@hookimpl
def dstbench_register_criteria(register):
    register("never_registered", lambda ctx: ctx.weight.abs())
