"""Objects handed to lifecycle hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dstbench.sparse.masker import LayerUpdate, Masker, TopologyUpdate

__all__ = ["EpochStats", "LayerUpdate", "RunContext", "TopologyUpdate"]


@dataclass
class RunContext:
    """One run, as observers see it."""

    #: The normalized run spec.
    spec: dict[str, Any]
    #: The run's id (hash of the normalized spec).
    run_id: str
    model: nn.Module
    device: torch.device
    #: The masks (None for dense runs).
    masker: Masker | None = None
    #: A directory observers may write files into, or None.
    artifact_dir: Path | None = None
    #: Free space for observers to keep state between hook calls, keyed by plugin.
    scratch: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpochStats:
    """Metrics of one finished epoch."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    #: ζ at the epoch's last iteration (None for dense/static runs).
    prune_fraction: float | None
    density: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (one entry of the record's per-epoch curve)."""
        return dict(self.__dict__)
