"""dstbench: a plugin-based benchmark harness for Dynamic Sparse Training.

Plugins add components with ``from dstbench import hookimpl``::

    from dstbench import Register, hookimpl

    @hookimpl
    def dstbench_register_criteria(register: Register) -> None:
        register("abs_grad", lambda ctx: ctx.grad.abs(), needs_grad=True, description="|g|")

and declare the module under the ``dstbench`` entry-point group of their ``pyproject.toml``.

``import dstbench`` loads the plugin contracts only (no torch): the functions that train or
read results (``execute``, ``prune``, ``load_results``, ...) load the engine on first use, so
that the command line and plugin discovery start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The submodule dstbench.registry is loaded here, before the function of the same name is
# bound below: loading it later would rebind the package attribute to the module.
from dstbench import registry as _registry_module
from dstbench._version import __version__
from dstbench.contracts import (
    ComponentRef,
    CriterionContext,
    DatasetContext,
    DatasetParts,
    EpochStats,
    GrowthContext,
    LayerContext,
    LayerUpdate,
    Register,
    RunContext,
    RunRecord,
    RunSpec,
    TensorSplit,
    TopologyUpdate,
)
from dstbench.errors import DstbenchError
from dstbench.hookspecs import hookimpl

if TYPE_CHECKING:
    from dstbench.analysis.results import RunResult, load_results
    from dstbench.api import grow, layer_densities, prune
    from dstbench.engine.single import execute

#: Public names that need the engine (torch): name -> module, imported on first access.
_ENGINE_EXPORTS = {
    "execute": "dstbench.engine.single",
    "grow": "dstbench.api",
    "layer_densities": "dstbench.api",
    "prune": "dstbench.api",
    "RunResult": "dstbench.analysis.results",
    "load_results": "dstbench.analysis.results",
}


def registry(*, reload: bool = False) -> _registry_module.Registry:
    """Everything the loaded plugins registered: ``registry().criteria["magnitude"]`` etc.

    Each table maps a name to its info (``description``, ``params``, ``plugin``, ...).
    """
    from dstbench.plugins import get_plugins  # loads the plugins (and torch): on first use

    return get_plugins(reload=reload).registry


def __getattr__(name: str) -> Any:
    # Start-up speed, not a cycle: these modules import torch (about 2 s).
    if name in _ENGINE_EXPORTS:
        value = getattr(importlib.import_module(_ENGINE_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dstbench' has no attribute {name!r}")


__all__ = [
    "ComponentRef",
    "CriterionContext",
    "DatasetContext",
    "DatasetParts",
    "DstbenchError",
    "EpochStats",
    "GrowthContext",
    "LayerContext",
    "LayerUpdate",
    "Register",
    "RunContext",
    "RunRecord",
    "RunResult",
    "RunSpec",
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
