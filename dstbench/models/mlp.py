"""Multi-layer perceptrons."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn


class MLP(nn.Sequential):
    """Flatten, then Linear + ReLU per hidden width, then a Linear classifier."""

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)


def mlp(input_shape: Sequence[int], num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> MLP:
    """A small MLP over the flattened input (the embedded default's model)."""
    return MLP(math.prod(input_shape), hidden, num_classes)
