"""Multi-layer perceptrons: the embedded default's ``mlp``, the paper's CIFAR-10 and Higgs MLPs.

All use PyTorch's default initialisation, as the paper's code does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from dstbench.models.shapes import InputShapeError, check_width, class_count


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


def _in_features(model: str, input_shape: Sequence[int]) -> int:
    features = math.prod(input_shape)
    if not input_shape or features < 1:
        shape = tuple(input_shape)
        msg = f"model {model!r} needs a non-empty input; the dataset gives shape {shape}"
        raise InputShapeError(msg)
    return features


def mlp(input_shape: Sequence[int], num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> MLP:
    """A small MLP over the flattened input (the embedded default's model)."""
    hidden = tuple(check_width("mlp", "hidden", h) for h in hidden)
    return MLP(_in_features("mlp", input_shape), hidden, class_count("mlp", num_classes))


def check_mlp(hidden: Sequence[int] = (256, 128)) -> None:
    """The widths of :func:`mlp` (without a dataset): integers in [1, MAX_WIDTH]."""
    if not isinstance(hidden, (list, tuple)):
        raise InputShapeError(f"model 'mlp': hidden must be a list of widths, got {hidden!r}")
    for h in hidden:
        check_width("mlp", "hidden", h)


def check_mlp_higgs(hidden: int = 256) -> None:
    """The width of :func:`mlp_higgs` (without a dataset)."""
    check_width("mlp_higgs", "hidden", hidden)


def mlp_cifar(input_shape: Sequence[int], num_classes: int) -> MLP:
    """The paper's CIFAR-10 MLP: flattened input, 1024 and 512 ReLU units, linear classifier.

    On (3, 32, 32) inputs and 10 classes it has 3,675,136 sparsifiable weights.
    """
    inputs = _in_features("mlp_cifar", input_shape)
    return MLP(inputs, (1024, 512), class_count("mlp_cifar", num_classes))


def mlp_higgs(input_shape: Sequence[int], num_classes: int, hidden: int = 256) -> MLP:
    """The paper's Higgs MLP: features, two ReLU layers of ``hidden`` units, output.

    For a binary dataset the output is one logit (the engine then trains with
    binary cross-entropy on logits, as the paper does); otherwise one logit per class.
    With 24 features it has 71,936 sparsifiable weights.
    """
    hidden = check_width("mlp_higgs", "hidden", hidden)
    classes = class_count("mlp_higgs", num_classes)
    outputs = 1 if classes == 2 else classes
    return MLP(_in_features("mlp_higgs", input_shape), (hidden, hidden), outputs)
