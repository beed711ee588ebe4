"""The built-in models, as a plugin: the paper's architectures and the embedded default's MLP.

Every factory takes the dataset's ``(input_shape, num_classes)`` plus its own keyword
parameters, returns logits (one column for a binary ``mlp_higgs``), and raises an
:class:`~dstbench.models.shapes.InputShapeError` naming the model and the shape when it
cannot take the dataset's input.
"""

from __future__ import annotations

from dstbench.contracts.components import Register
from dstbench.hookspecs import hookimpl
from dstbench.models.convnets import lenet5, small_conv, vgg16
from dstbench.models.mlp import check_mlp, check_mlp_higgs, mlp, mlp_cifar, mlp_higgs
from dstbench.models.resnet_cifar import check_resnet, resnet20, resnet32, resnet56
from dstbench.models.torchvision_models import efficientnet_b0, resnet50


@hookimpl
def dstbench_register_models(register: Register) -> None:
    """Register the built-in models."""
    register(
        "mlp",
        mlp,
        description="MLP over the flattened input, hidden widths (256, 128)",
        check=check_mlp,
    )
    register(
        "mlp_cifar",
        mlp_cifar,
        description="paper's CIFAR-10 MLP: flattened input-1024-512-classes, ReLU "
        "(3,675,136 sparse weights on CIFAR-10)",
    )
    register(
        "small_conv",
        small_conv,
        description="paper's small ConvNet: 3 unpadded 3x3 convs (32/64/128), 2 max-pools, "
        "global average pool, FC (94,304 sparse weights on CIFAR-10)",
    )
    for depth, factory in ((20, resnet20), (32, resnet32), (56, resnet56)):
        register(
            f"resnet{depth}",
            factory,
            description=f"CIFAR ResNet-{depth}: widths 16/32/64 (x width/16), BatchNorm, "
            "1x1 conv shortcuts, Kaiming-normal init"
            + (" (851,504 sparse weights on CIFAR-10)" if depth == 56 else ""),
            check=check_resnet,
        )
    register(
        "vgg16",
        vgg16,
        description="VGG-16 with BatchNorm and one linear classifier; conv Kaiming fan-out, "
        "classifier N(0, 0.01) init",
    )
    register(
        "lenet5",
        lenet5,
        description="LeNet-5 (Caffe): conv 20-50 5x5, FC 800-500-classes "
        "(430,500 sparse weights on Fashion-MNIST)",
    )
    register(
        "mlp_higgs",
        mlp_higgs,
        description="paper's Higgs MLP: features-256-256-1 logit for binary data (BCE on "
        "logits); 71,936 sparse weights with 24 features",
        check=check_mlp_higgs,
    )
    register(
        "efficientnet_b0",
        efficientnet_b0,
        description="torchvision EfficientNet-B0, random init, any class count (RGB >= 32x32)",
    )
    register(
        "resnet50",
        resnet50,
        description="torchvision ResNet-50, random init, any class count (RGB >= 32x32)",
    )
