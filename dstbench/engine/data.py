"""How the engine turns what a dataset plugin returns into batches.

Datasets that fit in memory are :class:`TensorSplit` objects: the engine moves them to the
training device once and produces every batch (and its augmentation) with tensor ops into
preallocated buffers, so there is no per-sample Python in the loop. Larger datasets are any
``torch.utils.data.Dataset`` and go through a ``DataLoader`` with workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from dstbench.contracts.data import BatchTransform, Split, TensorSplit


@runtime_checkable
class Unaugmentable(Protocol):
    """A ``Dataset`` that augments its samples and can serve them without augmentation.

    :func:`carve_validation` uses ``unaugmented()`` for the held-out validation samples.
    """

    def unaugmented(self) -> Dataset[Any]:
        """The same samples, in the same order, with the evaluation transform."""
        ...


#: Seed of the train/validation split: fixed, so every run seed sees the same validation set.
SPLIT_SEED = 20231


def carve_validation(train: Split, fraction: float) -> tuple[Split, Split | None]:
    """Hold out ``fraction`` of ``train`` as the validation split (same split for every seed).

    The held-out samples are never augmented (they are served like the test set): tensor
    splits get no batch transform, and a ``Dataset`` that augments per sample is asked for
    its ``unaugmented()`` view (see :class:`Unaugmentable`) for the held-out indices.
    """
    n = len(train)  # type: ignore[arg-type]
    n_val = round(fraction * n)
    if n_val == 0:
        return train, None
    if n_val >= n:
        msg = f"val_fraction {fraction} leaves no training samples out of {n}"
        raise ValueError(msg)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    train_idx, val_idx = order[: n - n_val].sort().values, order[n - n_val :].sort().values
    if isinstance(train, TensorSplit):
        return train.subset(train_idx), train.subset(val_idx)
    plain = train.unaugmented() if isinstance(train, Unaugmentable) else train
    return Subset(train, train_idx.tolist()), Subset(plain, val_idx.tolist())


class TensorBatches:
    """Batches of an on-device :class:`TensorSplit`, gathered into reused buffers.

    Each epoch draws one permutation from the generator; every batch is an ``index_select``
    into a preallocated buffer (the last, smaller batch into a view of it), then the optional
    augmentation. The yielded tensors are overwritten by the next batch.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        transform: BatchTransform | None = None,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.transform = transform
        size = min(batch_size, len(split))
        self._x = torch.empty(
            (size, *split.x.shape[1:]), dtype=split.x.dtype, device=split.x.device
        )
        self._y = torch.empty((size,), dtype=split.y.dtype, device=split.y.device)

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def epoch_order(self) -> torch.Tensor:
        """The sample order of the next epoch (draws the epoch's permutation when shuffling).

        The batched engine draws each run's order through this method, so that a run sees the
        same batches whichever engine trains it.
        """
        n = len(self.split)
        device = self.split.x.device
        if self.shuffle:
            return torch.randperm(n, generator=self.generator).to(device)
        return torch.arange(n, device=device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        order = self.epoch_order()
        for start in range(0, n, self.batch_size):
            index = order[start : start + self.batch_size]
            size = index.shape[0]
            xb, yb = self._x[:size], self._y[:size]
            torch.index_select(self.split.x, 0, index, out=xb)
            torch.index_select(self.split.y, 0, index, out=yb)
            if self.transform is not None:
                assert self.generator is not None
                xb = self.transform(xb, self.generator)
            yield xb, yb


class LoaderBatches:
    """Batches of a ``Dataset`` through a ``DataLoader`` (workers, pinned memory on GPU)."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None,
        device: torch.device,
        num_workers: int,
    ) -> None:
        self.device = device
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xb, yb in self.loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)


Batches = TensorBatches | LoaderBatches


def make_batches(
    split: Split,
    batch_size: int,
    *,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator | None = None,
    transform: BatchTransform | None = None,
    num_workers: int = 2,
) -> Batches:
    """The right batch iterator for ``split``: tensor path when in memory, else a DataLoader."""
    if isinstance(split, TensorSplit):
        return TensorBatches(
            split.to(device), batch_size, shuffle=shuffle, generator=generator, transform=transform
        )
    return LoaderBatches(
        split,
        batch_size,
        shuffle=shuffle,
        generator=generator,
        device=device,
        num_workers=num_workers,
    )
