"""dstbench: a plugin-based benchmark harness for Dynamic Sparse Training.

Plugins add components with ``from dstbench import hookimpl``::

    from dstbench import hookimpl

    @hookimpl
    def dstbench_register_criteria(register):
        register("abs_grad", lambda ctx: ctx.grad.abs(), needs_grad=True, description="|g|")

and declare the module under the ``dstbench`` entry-point group of their ``pyproject.toml``.
"""

from __future__ import annotations

from dstbench._version import __version__
from dstbench.analysis.results import RunResult, load_results
from dstbench.api import grow, layer_densities, prune, registry
from dstbench.engine.context import EpochStats, RunContext
from dstbench.engine.data import DatasetContext, DatasetParts, TensorSplit
from dstbench.engine.train import execute
from dstbench.errors import DstbenchError
from dstbench.hookspecs import hookimpl
from dstbench.sparse.masker import LayerUpdate, TopologyUpdate
from dstbench.sparse.ops import CriterionContext, GrowthContext, LayerContext

__all__ = [
    "CriterionContext",
    "DatasetContext",
    "DatasetParts",
    "DstbenchError",
    "EpochStats",
    "GrowthContext",
    "LayerContext",
    "LayerUpdate",
    "RunContext",
    "RunResult",
    "TensorSplit",
    "TopologyUpdate",
    "__version__",
    "execute",
    "grow",
    "hookimpl",
    "layer_densities",
    "load_results",
    "prune",
    "registry",
]
