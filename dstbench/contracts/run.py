"""What lifecycle hooks see of a run while it trains."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dstbench.contracts.layers import MaskView
from dstbench.contracts.spec import RunSpec

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class RunContext:
    """One run, as observers see it."""

    #: The run's spec (it also reads as its JSON mapping: ``run.spec["density"]``).
    spec: RunSpec
    #: The run's id (hash of the spec).
    run_id: str
    model: nn.Module
    device: torch.device
    #: The masks (None for dense runs).
    masker: MaskView | None = None
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
