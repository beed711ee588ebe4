"""The types plugins and hooks see, in one place; nothing here imports the engine (or torch).

* :mod:`~dstbench.contracts.components`: component kinds, component infos, ``Register``;
* :mod:`~dstbench.contracts.layers`: what criteria, growth methods and observers see of a layer;
* :mod:`~dstbench.contracts.data`: what dataset plugins are told and return;
* :mod:`~dstbench.contracts.spec` and :mod:`~dstbench.contracts.record`: run specs and records;
* :mod:`~dstbench.contracts.run`: what lifecycle hooks see of a training run;
* :mod:`~dstbench.contracts.execution`: jobs, execution options, the reporter, executors and
  engines.
"""

from __future__ import annotations

from dstbench.contracts.components import (
    KINDS,
    ComponentInfo,
    ComponentKind,
    CriterionInfo,
    GrowthInfo,
    Register,
)
from dstbench.contracts.data import BatchTransform, DatasetContext, DatasetParts, Split, TensorSplit
from dstbench.contracts.execution import (
    Engine,
    ExecutionOptions,
    Executor,
    Job,
    JobState,
    Reporter,
    RunRequest,
)
from dstbench.contracts.layers import (
    CriterionContext,
    GrowthContext,
    LayerContext,
    LayerUpdate,
    MaskView,
    TopologyUpdate,
)
from dstbench.contracts.record import RunRecord
from dstbench.contracts.run import EpochStats, RunContext
from dstbench.contracts.spec import ComponentRef, RunSpec

__all__ = [
    "KINDS",
    "BatchTransform",
    "ComponentInfo",
    "ComponentKind",
    "ComponentRef",
    "CriterionContext",
    "CriterionInfo",
    "DatasetContext",
    "DatasetParts",
    "Engine",
    "EpochStats",
    "ExecutionOptions",
    "Executor",
    "GrowthContext",
    "GrowthInfo",
    "Job",
    "JobState",
    "LayerContext",
    "LayerUpdate",
    "MaskView",
    "Register",
    "Reporter",
    "RunContext",
    "RunRecord",
    "RunRequest",
    "RunSpec",
    "Split",
    "TensorSplit",
    "TopologyUpdate",
]
