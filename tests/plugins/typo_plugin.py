"""A plugin with a misspelled hook name: it must fail, naming the hook."""

from __future__ import annotations

from dstbench import hookimpl


@hookimpl
def dstbench_register_criterias(register):
    register("typo_criterion", lambda ctx: ctx.weight.abs(), description="|w|")
