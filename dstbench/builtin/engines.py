"""The built-in training engines, as a plugin."""

from __future__ import annotations

from dstbench.batched.engine import BatchedEngine
from dstbench.contracts.components import Register
from dstbench.engine.single import SingleEngine
from dstbench.hookspecs import hookimpl


@hookimpl
def dstbench_register_engines(register: Register) -> None:
    """Register ``single`` and ``batched``."""
    register("single", SingleEngine, description="one run at a time (the reference engine)")
    register(
        "batched",
        BatchedEngine,
        description="compatible runs stacked and trained together in one forward/backward",
    )
