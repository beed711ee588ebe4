"""ImageNet-style networks from torchvision, randomly initialised, with any class count.

The architectures and initialisations are torchvision's own (no pretrained weights), as the
paper's code uses them: EfficientNet-B0 for Tiny-ImageNet and ResNet-50 for ImageNet.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from dstbench.models.shapes import class_count, image_shape


def efficientnet_b0(
    input_shape: Sequence[int],
    num_classes: int,
    dropout: float = 0.2,
    stochastic_depth_prob: float = 0.2,
) -> nn.Module:
    """torchvision's EfficientNet-B0 (random init; RGB images of at least 32×32).

    Its depthwise and squeeze-excitation convs are sparsifiable like every other conv.
    """
    from torchvision.models import efficientnet_b0 as build

    image_shape("efficientnet_b0", input_shape, min_size=32, channels=3)
    classes = class_count("efficientnet_b0", num_classes)
    return build(
        weights=None,
        num_classes=classes,
        dropout=dropout,
        stochastic_depth_prob=stochastic_depth_prob,
    )


def resnet50(input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """torchvision's ResNet-50 (v1.5, random init; RGB images of at least 32×32)."""
    from torchvision.models import resnet50 as build

    image_shape("resnet50", input_shape, min_size=32, channels=3)
    return build(weights=None, num_classes=class_count("resnet50", num_classes))
