"""ResNets for CIFAR (He et al. 2016, section 4.2): ResNet-20, -32 and -56.

A 3×3 stem conv, three stages of n basic blocks each (widths w, 2w, 4w; the first block of
stages 2 and 3 halves the resolution), global average pooling and a linear classifier;
depth = 6n + 2. Every conv is followed by BatchNorm. Where a block changes width or
resolution its shortcut is a 1×1 stride-2 conv + BatchNorm (option B), as in the paper's
code (whose 1×1 shortcuts are sparse). Linear and conv weights are Kaiming-normal
initialised (fan-in, ReLU gain), as in the paper's code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dstbench.models.shapes import InputShapeError, check_width, class_count, image_shape


class BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers around a residual connection."""

    def __init__(self, in_width: int, out_width: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(in_width, out_width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_width)
        self.conv2 = nn.Conv2d(out_width, out_width, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_width)
        self.shortcut: nn.Module = nn.Identity()
        if downsample or in_width != out_width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_width, out_width, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_width),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR ResNet with ``blocks`` basic blocks per stage and base width ``width``."""

    def __init__(self, blocks: int, width: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        current = width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            for index in range(blocks):
                layers.append(BasicBlock(current, stage_width, stage > 0 and index == 0))
                current = stage_width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(current, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, classes)."""
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def cifar_resnet(
    input_shape: Sequence[int], num_classes: int, depth: int = 56, width: int = 16
) -> CifarResNet:
    """A CIFAR ResNet of ``depth`` = 6n + 2 layers (images of at least 4×4)."""
    name = f"resnet{depth}"
    if depth < 8 or (depth - 2) % 6:
        msg = f"model {name!r}: depth must be 6n + 2 with n >= 1 (20, 32, 56, ...), got {depth}"
        raise InputShapeError(msg)
    check_width(name, "width", width)
    c, _, _ = image_shape(name, input_shape, min_size=4)
    return CifarResNet((depth - 2) // 6, width, c, class_count(name, num_classes))


def check_resnet(width: int = 16) -> None:
    """The width of the CIFAR ResNets (without a dataset)."""
    check_width("resnet", "width", width)


def resnet20(input_shape: Sequence[int], num_classes: int, width: int = 16) -> CifarResNet:
    """ResNet-20 for CIFAR (3 blocks per stage, widths 16/32/64 by default)."""
    return cifar_resnet(input_shape, num_classes, depth=20, width=width)


def resnet32(input_shape: Sequence[int], num_classes: int, width: int = 16) -> CifarResNet:
    """ResNet-32 for CIFAR (5 blocks per stage, widths 16/32/64 by default)."""
    return cifar_resnet(input_shape, num_classes, depth=32, width=width)


def resnet56(input_shape: Sequence[int], num_classes: int, width: int = 16) -> CifarResNet:
    """ResNet-56 for CIFAR (9 blocks per stage, widths 16/32/64 by default), the paper's model.

    On CIFAR-10 it has 851,504 sparsifiable weights (1×1 shortcuts included).
    """
    return cifar_resnet(input_shape, num_classes, depth=56, width=width)
