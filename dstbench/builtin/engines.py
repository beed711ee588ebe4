"""The built-in training engines, as a plugin."""

from __future__ import annotations

from dstbench.batched.engine import BatchedEngine
from dstbench.contracts.components import Register
from dstbench.engine.single import SingleEngine
from dstbench.hookspecs import hookimpl
from dstbench.sparsetrain.engine import SparseEngine


@hookimpl
def dstbench_register_engines(register: Register) -> None:
    """Register ``single``, ``batched`` and ``sparse``."""
    register("single", SingleEngine, description="one run at a time (the reference engine)")
    register(
        "batched",
        BatchedEngine,
        description="compatible runs stacked and trained together in one forward/backward",
    )
    register(
        "sparse",
        SparseEngine,
        description="Linear layers hold only their active weights: cost falls with density",
    )
