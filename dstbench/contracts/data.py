"""What a dataset plugin is told and what it returns.

Datasets that fit in memory are :class:`TensorSplit` objects: the engine moves them to the
training device once and produces every batch (and its augmentation) with tensor ops. Larger
datasets are any ``torch.utils.data.Dataset``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

#: A batch augmentation: ``transform(x, generator) -> x`` on a whole batch, with tensor ops.
BatchTransform = Callable[["torch.Tensor", "torch.Generator"], "torch.Tensor"]


@dataclass
class TensorSplit:
    """An in-memory split: inputs ``x`` (N, ...) and integer labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            msg = f"x has {self.x.shape[0]} samples but y has {self.y.shape[0]}"
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: torch.Tensor) -> TensorSplit:
        """The samples at ``index``."""
        return TensorSplit(self.x[index], self.y[index])

    def to(self, device: torch.device | str) -> TensorSplit:
        """This split on ``device``."""
        return TensorSplit(self.x.to(device), self.y.to(device))


#: A split: in memory, or any map-style ``torch.utils.data.Dataset`` of ``(x, y)`` pairs.
Split = Union[TensorSplit, "Dataset[Any]"]


@dataclass
class DatasetParts:
    """What a dataset factory returns.

    ``val`` is normally None: the engine then carves the validation split out of ``train``
    (fixed across seeds). A dataset gives ``val`` itself only for an option that reproduces a
    specific protocol (e.g. the paper's "validate on the test set" for CIFAR-100).
    """

    train: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int
    val: Split | None = None
    #: Augmentation for training batches (tensor splits only), e.g. random crop + flip.
    train_transform: BatchTransform | None = None
    #: DataLoader workers for Dataset-backed splits.
    num_workers: int = 2
    #: Free-form notes recorded in the result (e.g. which split protocol was used).
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetContext:
    """What a dataset factory is told about where to read data."""

    #: The resolved data directory (it may not exist yet).
    root: Path
    #: Whether the factory may download missing data.
    download: bool = False
    #: The spec's ``validation``: ``"split"`` (the engine carves the validation split from
    #: ``train``; the factory returns ``val=None``) or ``"paper"`` (the factory reproduces the
    #: paper's own choice, returning ``val`` and the matching ``train``).
    validation: str = "split"


#: Environment variable naming the default data directory.
DATA_ENV = "DSTBENCH_DATA"


def default_data_root() -> Path:
    """``$DSTBENCH_DATA``, else the per-user cache directory (``~/.cache/dstbench/data``)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dstbench" / "data"


def resolve_data_root(explicit: str | os.PathLike[str] | None) -> Path:
    """The data root: an explicit one (from the suite or CLI) first, then the defaults."""
    return Path(explicit).expanduser() if explicit else default_data_root()
