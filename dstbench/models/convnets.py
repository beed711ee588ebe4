"""The paper's small convolutional networks: the small ConvNet, LeNet-5 (Caffe) and VGG-16.

All return logits (the engine's cross-entropy equals the paper's NLL on log-softmax).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dstbench.models.shapes import class_count, image_shape


class SmallConvNet(nn.Module):
    """Three unpadded 3×3 convs (32, 64, 128 channels) with ReLU, max-pooling after the first
    two, global average pooling and one linear classifier (PyTorch default initialisation).

    On CIFAR-10 it has 94,304 sparsifiable weights.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, classes)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def small_conv(input_shape: Sequence[int], num_classes: int) -> SmallConvNet:
    """The paper's small ConvNet for CIFAR-10 (any image size of at least 18×18)."""
    c, _, _ = image_shape("small_conv", input_shape, min_size=18)
    return SmallConvNet(c, class_count("small_conv", num_classes))


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe: conv 5×5 with 20 then 50 channels (no padding), each followed by
    ReLU and 2×2 max-pooling, then FC 500 + ReLU and a linear classifier.

    On 28×28 grey images (800 features after the convs) it has 430,500 sparsifiable weights.
    """

    def __init__(self, in_channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        features = 50 * (((height - 4) // 2 - 4) // 2) * (((width - 4) // 2 - 4) // 2)
        self.fc3 = nn.Linear(features, 500)
        self.fc4 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, classes)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc4(F.relu(self.fc3(torch.flatten(x, 1))))


def lenet5(input_shape: Sequence[int], num_classes: int) -> LeNet5:
    """LeNet-5 (Caffe variant), the paper's Fashion-MNIST model (images of at least 16×16)."""
    c, h, w = image_shape("lenet5", input_shape, min_size=16)
    return LeNet5(c, h, w, class_count("lenet5", num_classes))


#: VGG-16's convolution widths; "M" is a 2×2 max-pool. The fifth pool is left out, as in
#: the paper's CIFAR variant.
VGG16_PLAN: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip


class VGG(nn.Module):
    """VGG with batch normalisation and a single linear classifier.

    3×3 convs without bias, each followed by BatchNorm and ReLU; after the last conv, average
    pooling over the remaining feature map (2×2 on CIFAR, 4×4 on 64×64 images, as in the
    paper's code) and one Linear layer. Initialisation as in the paper's code: Kaiming-normal
    with fan-out for the convs, N(0, 0.01) weights and zero bias for the classifier,
    BatchNorm weight 1 and bias 0.
    """

    def __init__(self, plan: Sequence[int | str], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                width = int(item)
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, classes)."""
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


def vgg16(input_shape: Sequence[int], num_classes: int) -> VGG:
    """VGG-16 with BatchNorm, the paper's CIFAR-100 model (images of at least 16×16)."""
    pools = sum(1 for item in VGG16_PLAN if item == "M")
    c, _, _ = image_shape("vgg16", input_shape, min_size=int(math.pow(2, pools)))
    return VGG(VGG16_PLAN, c, class_count("vgg16", num_classes))
