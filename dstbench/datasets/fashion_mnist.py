"""Fashion-MNIST from the official IDX files.

Layout (torchvision's, so an existing torchvision data folder works as the data root)::

    <root>/FashionMNIST/raw/train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    <root>/FashionMNIST/raw/t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

(gzip-compressed or already unpacked). IDX: a big-endian header of two zero bytes, a type
byte (0x08 = unsigned byte), the number of dimensions, then one int32 per dimension, then the
data. ``download = true`` fetches the files through torchvision.

As in the paper: normalised with mean 0.5 and std 0.5, no augmentation.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dstbench.contracts.data import DatasetContext, DatasetParts, TensorSplit
from dstbench.datasets.augment import normalize_images
from dstbench.datasets.files import bad_file, exclusive, missing_data
from dstbench.datasets.splits import PAPER_VALID_SPLIT, last_fraction
from dstbench.errors import DataError

FOLDER = Path("FashionMNIST") / "raw"
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
URL = "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz)"
MEAN, STD = (0.5,), (0.5,)
#: IDX type byte -> numpy dtype (big-endian where it matters).
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path, ndim: int, dataset: str = "fashion_mnist") -> np.ndarray:
    """The array stored in IDX file ``path`` (gzip or plain), checked to have ``ndim`` dims.

    :raises DataError: naming the file for a bad magic number, dimension count or length.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        # Only the reason's kind: gzip's messages quote bytes of the file.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise bad_file(dataset, path, f"cannot read ({reason})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise bad_file(dataset, path, "not an IDX file (bad magic number)")
    if raw[3] != ndim:
        raise bad_file(dataset, path, f"expected an IDX file of {ndim} dimensions, got {raw[3]}")
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = IDX_TYPES[raw[2]]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        problem = f"header says {dims} ({expected} bytes) but {len(raw) - header} bytes follow"
        raise bad_file(dataset, path, problem)
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _download(ctx: DatasetContext) -> None:
    from torchvision.datasets import FashionMNIST

    with exclusive(ctx.root, "FashionMNIST"):
        try:
            FashionMNIST(str(ctx.root), train=True, download=True)
        except Exception as exc:  # network or checksum failure: one clear line
            msg = f"dataset 'fashion_mnist': download failed ({exc})"
            raise DataError(msg) from exc


def read_fashion_mnist(ctx: DatasetContext) -> tuple[TensorSplit, TensorSplit]:
    """Raw uint8 (N, 1, 28, 28) images and int64 labels: (train, test)."""
    folder = ctx.root / FOLDER
    paths = {key: _find(folder, stem) for key, stem in FILES.items()}
    if None in paths.values() and ctx.download:
        _download(ctx)
        paths = {key: _find(folder, stem) for key, stem in FILES.items()}
    missing = [FILES[key] for key, path in paths.items() if path is None]
    if missing:
        how = (
            f"missing {', '.join(f'{m}.gz' for m in missing)}; run with --download "
            f"(download = true), or put the four .gz files from {URL} in {folder}"
        )
        raise missing_data("fashion_mnist", folder, how)
    splits = []
    for part in ("train", "test"):
        images_path, labels_path = paths[f"{part}_images"], paths[f"{part}_labels"]
        assert images_path is not None and labels_path is not None
        images = read_idx(images_path, 3)
        labels = read_idx(labels_path, 1).astype(np.int64)
        if images.dtype != np.uint8:
            raise bad_file(
                "fashion_mnist", images_path, f"expected uint8 pixels, got {images.dtype}"
            )
        if images.shape[0] != labels.shape[0]:
            problem = f"{images.shape[0]} images but {labels.shape[0]} labels in {labels_path.name}"
            raise bad_file("fashion_mnist", images_path, problem)
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise bad_file("fashion_mnist", labels_path, "labels must lie in [0, 10)")
        x = torch.from_numpy(images.copy()).unsqueeze(1)
        splits.append(TensorSplit(x, torch.from_numpy(labels)))
    return splits[0], splits[1]


def load_fashion_mnist(ctx: DatasetContext) -> DatasetParts:
    """Fashion-MNIST: 60,000 training and 10,000 test 28×28 grey images, 10 classes.

    Validation ``"paper"``: the last 6,000 training images, unshuffled (54,000 / 6,000).
    """
    raw_train, raw_test = read_fashion_mnist(ctx)
    train = TensorSplit(normalize_images(raw_train.x, MEAN, STD), raw_train.y)
    test = TensorSplit(normalize_images(raw_test.x, MEAN, STD), raw_test.y)
    val = None
    notes = {"normalize": {"mean": list(MEAN), "std": list(STD)}, "augmentation": "none"}
    if ctx.validation == "paper":
        train, val = last_fraction(train, PAPER_VALID_SPLIT)
        notes["validation"] = "paper: the last 10% of the training set, unshuffled"
    return DatasetParts(
        train=train, test=test, val=val, input_shape=(1, 28, 28), num_classes=10, notes=notes
    )
