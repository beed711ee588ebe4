"""scikit-learn's bundled handwritten digits: 1,797 8×8 images, 10 classes, no download.

The embedded default dataset. scikit-learn ships no test split, so a fixed, stratified 20% is
held out as the test set (the same for every run seed); the validation split is then carved
from the rest by the engine. Pixels (0..16) are standardized with the training part's mean and
standard deviation.
"""

from __future__ import annotations

import torch

from dstbench.contracts.data import DatasetContext, DatasetParts, TensorSplit

TEST_FRACTION = 0.2
TEST_SPLIT_SEED = 1797


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, held_out) with ``fraction`` of every class held out, fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for cls in labels.unique(sorted=True):
        members = (labels == cls).nonzero().squeeze(1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        held.append(members[: round(fraction * members.numel())])
    held_out = torch.cat(held).sort().values
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[held_out] = False
    return keep.nonzero().squeeze(1), held_out


def load_digits(ctx: DatasetContext) -> DatasetParts:
    """scikit-learn digits as (1, 8, 8) float tensors."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    train_idx, test_idx = stratified_split(y, TEST_FRACTION, TEST_SPLIT_SEED)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return DatasetParts(
        train=TensorSplit(x[train_idx], y[train_idx]),
        test=TensorSplit(x[test_idx], y[test_idx]),
        input_shape=(1, 8, 8),
        num_classes=10,
        notes={"test_split": f"fixed stratified {TEST_FRACTION:.0%} (seed {TEST_SPLIT_SEED})"},
    )
