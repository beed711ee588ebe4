"""CIFAR-10 and CIFAR-100 from the official "python version" pickles.

Layout (torchvision's, so an existing torchvision data folder works as the data root)::

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch
    <root>/cifar-100-python/train, test

Each file is a pickled dict with ``data`` (N×3072 uint8, channel-major 32×32 planes) and
``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100), read with a restricted unpickler that
admits only containers and numpy arrays (:mod:`dstbench.datasets.safe_pickle`): a crafted
file in a data root cannot run code. The official archive
(``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``) placed in the root is unpacked
on first use; ``download = true`` fetches it through torchvision.

The images are held in memory as normalised float32 tensors (the engine moves them to the
training device once) and augmented per batch with :class:`RandomCropFlip`, as in the paper:
CIFAR-10 reflect-pads by 4 (the paper's MLP/ConvNet/ResNet-56 loader), CIFAR-100 zero-pads
by 4 (torchvision's ``RandomCrop(32, padding=4)``), both then crop 32×32 and flip.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dstbench.contracts.data import DatasetContext, DatasetParts, TensorSplit
from dstbench.datasets.augment import PADDING_MODES, RandomCropFlip, normalize_images, zero_fill
from dstbench.datasets.files import bad_file, exclusive, extract_folder, missing_data
from dstbench.datasets.safe_pickle import RefusedGlobal, load_data_pickle
from dstbench.datasets.splits import PAPER_VALID_SPLIT, last_fraction
from dstbench.errors import DataError, ParameterError


@dataclass(frozen=True)
class CifarFormat:
    """Where one CIFAR variant's files are and how the paper normalises it."""

    name: str
    title: str
    folder: str
    archive: str
    url: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


CIFAR10 = CifarFormat(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    label_key="labels",
    num_classes=10,
    # The paper's constants (its CIFAR-10 loader), kept for fidelity.
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)

CIFAR100 = CifarFormat(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    train_files=("train",),
    test_files=("test",),
    label_key="fine_labels",
    num_classes=100,
    mean=(0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
    std=(0.2673342858792401, 0.2564384629170883, 0.27615047132568404),
)


def _get(entry: dict[Any, Any], key: str) -> Any:
    """``entry[key]`` whether the pickle was written with str or bytes keys."""
    if key in entry:
        return entry[key]
    return entry[key.encode()]


def read_cifar_file(path: Path, label_key: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickle -> (uint8 images (N, 3, 32, 32), int64 labels (N,)).

    :raises DataError: naming the file when it is not a CIFAR pickle of the expected shape.
    """
    try:
        with open(path, "rb") as handle:
            entry = load_data_pickle(handle)
        data = np.asarray(_get(entry, "data"))
        labels = np.asarray(_get(entry, label_key), dtype=np.int64)
    except RefusedGlobal as exc:
        raise bad_file(dataset, path, f"not a CIFAR data pickle ({exc})") from None
    except pickle.UnpicklingError:
        # pickle's own messages quote bytes of the file: never let them reach a record.
        raise bad_file(dataset, path, "not a CIFAR pickle (not a pickle file)") from None
    except (OSError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"not a CIFAR pickle with 'data' and {label_key!r} ({type(exc).__name__})"
        raise bad_file(dataset, path, problem) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        problem = f"'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        raise bad_file(dataset, path, problem)
    if labels.shape != (data.shape[0],):
        problem = f"{data.shape[0]} images but {labels.shape[0]} {label_key!r}"
        raise bad_file(dataset, path, problem)
    return data.reshape(-1, 3, 32, 32), labels


def _locate(fmt: CifarFormat, ctx: DatasetContext) -> Path:
    folder = ctx.root / fmt.folder
    if folder.is_dir():
        return folder
    archive = ctx.root / fmt.archive
    if archive.is_file():
        extract_folder(archive, folder)
        return folder
    if ctx.download:
        from torchvision.datasets import CIFAR10 as TvCifar10
        from torchvision.datasets import CIFAR100 as TvCifar100

        builder = TvCifar10 if fmt is CIFAR10 else TvCifar100
        with exclusive(ctx.root, fmt.folder):
            try:
                builder(str(ctx.root), train=True, download=True)
            except Exception as exc:  # network or checksum failure: one clear line
                msg = f"dataset {fmt.name!r}: download from {fmt.url} failed ({exc})"
                raise DataError(msg) from exc
        return folder
    how = (
        f"run with --download (download = true), or put {fmt.url.rsplit('/', 1)[1]} "
        f"from {fmt.url} (or its unpacked {fmt.folder}/ folder) in {ctx.root}"
    )
    raise missing_data(fmt.name, folder, how)


def read_cifar(fmt: CifarFormat, ctx: DatasetContext) -> tuple[TensorSplit, TensorSplit]:
    """The raw (uint8 images, labels) train and test splits of ``fmt`` under ``ctx.root``."""
    folder = _locate(fmt, ctx)
    splits = []
    for files in (fmt.train_files, fmt.test_files):
        xs, ys = [], []
        for name in files:
            path = folder / name
            if not path.is_file():
                how = f"the folder is incomplete (expected {', '.join(files)}); re-download it"
                raise missing_data(fmt.name, path, how)
            x, y = read_cifar_file(path, fmt.label_key, fmt.name)
            xs.append(x)
            ys.append(y)
        y_all = np.concatenate(ys)
        if y_all.size and (y_all.min() < 0 or y_all.max() >= fmt.num_classes):
            problem = f"labels must lie in [0, {fmt.num_classes}), got {y_all.min()}..{y_all.max()}"
            raise bad_file(fmt.name, folder, problem)
        splits.append(TensorSplit(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(y_all)))
    return splits[0], splits[1]


def load_cifar(
    fmt: CifarFormat, ctx: DatasetContext, *, augment: bool, padding_mode: str
) -> DatasetParts:
    """``fmt`` as normalised in-memory tensors with the paper's batch augmentation.

    Validation ``"paper"``: CIFAR-10 trains on the first 45,000 images and validates on the
    last 5,000 (unshuffled); CIFAR-100 validates on the test set. ``"split"``: the engine
    carves the validation split from all 50,000 training images.
    """
    if padding_mode not in PADDING_MODES:
        msg = f"dataset {fmt.name!r} parameter 'padding_mode' must be one of {PADDING_MODES}"
        raise ParameterError(f"{msg}, got {padding_mode!r}")
    raw_train, raw_test = read_cifar(fmt, ctx)
    train = TensorSplit(normalize_images(raw_train.x, fmt.mean, fmt.std), raw_train.y)
    test = TensorSplit(normalize_images(raw_test.x, fmt.mean, fmt.std), raw_test.y)
    val = None
    notes: dict[str, Any] = {
        "normalize": {"mean": list(fmt.mean), "std": list(fmt.std)},
        "augmentation": f"pad 4 ({padding_mode}), random crop 32, horizontal flip"
        if augment
        else "none",
    }
    if ctx.validation == "paper":
        if fmt is CIFAR100:
            val = test
            notes["validation"] = "paper: the test set (model selection on test data)"
        else:
            train, val = last_fraction(train, PAPER_VALID_SPLIT)
            notes["validation"] = "paper: the last 10% of the training set, unshuffled"
    transform = None
    if augment:
        fill = zero_fill(fmt.mean, fmt.std)
        transform = RandomCropFlip(padding=4, padding_mode=padding_mode, fill=fill, flip=True)
    return DatasetParts(
        train=train,
        test=test,
        val=val,
        input_shape=(3, 32, 32),
        num_classes=fmt.num_classes,
        train_transform=transform,
        notes=notes,
    )


def load_cifar10(
    ctx: DatasetContext, augment: bool = True, padding_mode: str = "reflect"
) -> DatasetParts:
    """CIFAR-10: 50,000 training and 10,000 test 32×32 colour images, 10 classes."""
    return load_cifar(CIFAR10, ctx, augment=augment, padding_mode=padding_mode)


def load_cifar100(
    ctx: DatasetContext, augment: bool = True, padding_mode: str = "constant"
) -> DatasetParts:
    """CIFAR-100: 50,000 training and 10,000 test 32×32 colour images, 100 fine classes."""
    return load_cifar(CIFAR100, ctx, augment=augment, padding_mode=padding_mode)
