"""The built-in executors, as a plugin."""

from __future__ import annotations

from dstbench.hookspecs import hookimpl
from dstbench.registry import Register
from dstbench.suite.local import LocalExecutor


@hookimpl
def dstbench_register_executors(register: Register) -> None:
    """Register the built-in executors."""
    register(
        "local",
        LocalExecutor,
        description="parallel worker processes on this machine (-j N; GPUs round-robin)",
    )
