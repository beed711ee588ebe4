"""Writers of tiny datasets in the exact on-disk formats the real loaders read.

Used by the dataset tests: every file is what the official distribution contains (CIFAR
python pickles with bytes keys, gzip IDX files with their magic numbers, the Tiny-ImageNet
zip tree, an ImageFolder tree, a Higgs CSV), only with a handful of samples.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def cifar_images(n: int, seed: int) -> np.ndarray:
    """``n`` random uint8 CIFAR rows (N, 3072)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _pickle(path: Path, entry: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=2)


def write_cifar10(root: Path, per_batch: int = 4, n_test: int = 6, seed: int = 0) -> dict:
    """``root/cifar-10-batches-py`` with 5 training batches and a test batch.

    Returns the raw arrays: ``{"train": (data, labels), "test": (data, labels)}``.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train_x, train_y = [], []
    for i in range(1, 6):
        data = cifar_images(per_batch, seed + i)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _pickle(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": labels,
                b"data": data,
                b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)],
            },
        )
        train_x.append(data)
        train_y += labels
    test_x = cifar_images(n_test, seed + 99)
    test_y = [int(v) for v in rng.integers(0, 10, n_test)]
    _pickle(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": test_y,
            b"data": test_x,
            b"filenames": [b"t.png"] * n_test,
        },
    )
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _pickle(
        folder / "batches.meta",
        {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072},
    )
    return {
        "train": (np.concatenate(train_x), np.array(train_y)),
        "test": (test_x, np.array(test_y)),
    }


def write_cifar100(root: Path, n_train: int = 20, n_test: int = 6, seed: int = 0) -> dict:
    """``root/cifar-100-python`` with ``train``, ``test`` and ``meta``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = cifar_images(n, seed + len(name))
        fine = [int(v) for v in rng.integers(0, 100, n)]
        _pickle(
            folder / name,
            {
                b"filenames": [b"x.png"] * n,
                b"batch_label": name.encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": data,
            },
        )
        out[name] = (data, np.array(fine))
    _pickle(
        folder / "meta",
        {
            b"fine_label_names": [b"c%d" % i for i in range(100)],
            b"coarse_label_names": [b"s%d" % i for i in range(20)],
        },
    )
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, 0x08, ndim, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(
    root: Path, n_train: int = 20, n_test: int = 5, seed: int = 0, gz: bool = True
) -> dict:
    """``root/FashionMNIST/raw`` with the four IDX files (gzip-compressed by default)."""
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
            stem = f"{prefix}-{kind}-idx{dims}-ubyte"
            payload = idx_bytes(array)
            if gz:
                with gzip.open(folder / f"{stem}.gz", "wb") as handle:
                    handle.write(payload)
            else:
                (folder / stem).write_bytes(payload)
        out[prefix] = (images, labels)
    return out


def _jpeg(path: Path, size: int, value: int, grey: bool = False) -> None:
    """A ``size``×``size`` JPEG with a left-to-right ramp (so a flip changes it)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = (np.linspace(0, 200, size)[None, :] + value) % 256
    plane = np.repeat(ramp, size, axis=0).astype(np.uint8)
    if grey:
        Image.fromarray(plane, mode="L").save(path, "JPEG", quality=95)
    else:
        rgb = np.stack([plane, 255 - plane, plane // 2], axis=-1)
        Image.fromarray(rgb, mode="RGB").save(path, "JPEG", quality=95)


def write_tiny_imagenet(
    root: Path, wnids: tuple[str, ...] = ("n02", "n01"), per_class: int = 3, n_val: int = 4
) -> dict:
    """``root/tiny-imagenet-200`` exactly as in the official zip (few 64×64 images).

    ``wnids.txt`` lists the ids unsorted, as the official file does; labels follow the
    sorted ids. Returns ``{"val": [(file, wnid), ...]}``.
    """
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tthing {w}\n" for w in (*wnids, "n99")))
    for c, wnid in enumerate(wnids):
        boxes = []
        for i in range(per_class):
            name = f"{wnid}_{i}.JPEG"
            _jpeg(base / "train" / wnid / "images" / name, 64, 40 * c + 10 * i, grey=i == 0)
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    val = []
    lines = []
    for i in range(n_val):
        name, wnid = f"val_{i}.JPEG", wnids[i % len(wnids)]
        _jpeg(base / "val" / "images" / name, 64, 200 - 10 * i)
        lines.append(f"{name}\t{wnid}\t0\t0\t63\t63\n")
        val.append((name, wnid))
    (base / "val" / "val_annotations.txt").write_text("".join(lines))
    _jpeg(base / "test" / "images" / "test_0.JPEG", 64, 7)
    return {"val": val}


def write_image_folder(root: Path, classes: tuple[str, ...], per_class: int, size: int) -> None:
    """An ImageFolder tree ``root/<class>/*.JPEG``."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            _jpeg(root / name / f"{name}_{i}.JPEG", size, 30 * c + 5 * i)


def write_higgs_csv(path: Path, n: int = 200, features: int = 24, seed: int = 0) -> np.ndarray:
    """A Higgs-like CSV: a header, ``features`` numeric columns and a 0/1 ``target`` column
    (60% ones). Returns the values (N, features + 1), target last."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).round(6)
    y = (rng.random(n) < 0.6).astype(float)
    y[:2] = (0.0, 1.0)
    values = np.column_stack([x, y])
    header = ",".join([*(f"f{i}" for i in range(features)), "target"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, values, delimiter=",", header=header, comments="", fmt="%.6f")
    return values
