"""The built-in datasets, as a plugin.

``digits`` is embedded (no files). The others read the real on-disk formats under the data
root (the suite's or CLI's ``data_root``, else ``$DSTBENCH_DATA``, else the per-user cache);
see ``docs/datasets.md`` for where each dataset's files go. Only ``digits`` registers spec
defaults: the paper's hyperparameters belong to a setup (model and dataset), so they live
in the suites.
"""

from __future__ import annotations

from dstbench.contracts.components import Register
from dstbench.datasets.cifar import load_cifar10, load_cifar100
from dstbench.datasets.digits import load_digits
from dstbench.datasets.fashion_mnist import load_fashion_mnist
from dstbench.datasets.higgs import load_higgs
from dstbench.datasets.imagenet import load_imagenet
from dstbench.datasets.tiny_imagenet import load_tiny_imagenet
from dstbench.hookspecs import hookimpl

#: Spec defaults for digits: ~40 iterations per epoch, so updates every 50 iterations.
DIGITS_DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 0.05, "update_period": 50}


@hookimpl
def dstbench_register_datasets(register: Register) -> None:
    """Register the built-in datasets."""
    register(
        "digits",
        load_digits,
        description="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download)",
        defaults=DIGITS_DEFAULTS,
    )
    register(
        "cifar10",
        load_cifar10,
        description="CIFAR-10 from cifar-10-batches-py/ pickles; in-memory tensors, "
        "reflect-pad-4 crop + flip on the device",
    )
    register(
        "cifar100",
        load_cifar100,
        description="CIFAR-100 from cifar-100-python/ pickles; in-memory tensors, "
        "zero-pad-4 crop + flip on the device",
    )
    register(
        "fashion_mnist",
        load_fashion_mnist,
        description="Fashion-MNIST from FashionMNIST/raw/ IDX files; in-memory tensors, "
        "normalised, no augmentation",
    )
    register(
        "tiny_imagenet",
        load_tiny_imagenet,
        description="Tiny-ImageNet (200 classes, 64x64) from the official tiny-imagenet-200/ "
        "layout; val/ is the test set; DataLoader workers, flip",
    )
    register(
        "higgs",
        load_higgs,
        description="Higgs (OpenML task 361069, 24 features, binary) from a local CSV/parquet; "
        "the paper's stratified 70/15/15 split",
    )
    register(
        "imagenet",
        load_imagenet,
        description="ImageNet-1k in ImageFolder layout (imagenet/train, imagenet/val); "
        "DataLoader workers, RandomResizedCrop + flip",
    )
