"""Tiny-ImageNet (200 classes, 64×64) read straight from the official zip's layout.

Layout of ``tiny-imagenet-200.zip`` (unpacked in the data root; the zip itself placed there is
unpacked on first use, and ``download = true`` fetches it)::

    <root>/tiny-imagenet-200/wnids.txt                       200 class ids, one per line
    <root>/tiny-imagenet-200/words.txt                       id<TAB>names (not needed)
    <root>/tiny-imagenet-200/train/<wnid>/images/*.JPEG      500 per class
    <root>/tiny-imagenet-200/train/<wnid>/<wnid>_boxes.txt   (ignored)
    <root>/tiny-imagenet-200/val/images/*.JPEG               10,000 images
    <root>/tiny-imagenet-200/val/val_annotations.txt         file<TAB>wnid<TAB>box
    <root>/tiny-imagenet-200/test/images/*.JPEG              unlabelled (not used)

The validation images are labelled from ``val_annotations.txt``; nothing needs to be moved
into class folders. Class indices follow the sorted wnids (the order torchvision's
ImageFolder gives, as in the paper). The official ``val/`` set is the test set here (the
``test/`` images have no labels); as in the paper, training images are flipped at random and
every image is normalised with the ImageNet statistics.
"""

from __future__ import annotations

import os
from pathlib import Path

from dstbench.contracts.data import DatasetContext, DatasetParts
from dstbench.datasets.files import bad_file, exclusive, extract_folder, missing_data
from dstbench.datasets.images import ImageFiles, image_transforms
from dstbench.datasets.splits import test_as_validation
from dstbench.errors import DataError, ParameterError

FOLDER = "tiny-imagenet-200"
ARCHIVE = "tiny-imagenet-200.zip"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def _locate(ctx: DatasetContext) -> Path:
    folder = ctx.root / FOLDER
    if folder.is_dir():
        return folder
    archive = ctx.root / ARCHIVE
    if not archive.is_file() and ctx.download:
        from torchvision.datasets.utils import download_url

        with exclusive(ctx.root, ARCHIVE):
            if not archive.is_file():
                try:
                    download_url(URL, str(ctx.root), filename=ARCHIVE)
                except Exception as exc:  # network failure: one clear line
                    msg = f"dataset 'tiny_imagenet': download from {URL} failed ({exc})"
                    raise DataError(msg) from exc
    if archive.is_file():
        extract_folder(archive, folder)
        return folder
    how = f"run with --download (download = true), or put {ARCHIVE} from {URL} in {ctx.root}"
    raise missing_data("tiny_imagenet", folder, how)


def _images_in(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(names)


def read_tiny_imagenet(
    root: Path,
) -> tuple[list[str], tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """``(wnids, (train paths, labels), (val paths, labels))`` of an unpacked Tiny-ImageNet.

    :raises DataError: naming the file or folder that is missing or malformed.
    """
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise missing_data("tiny_imagenet", wnids_file, f"the {FOLDER}/ folder is incomplete")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    if not wnids:
        raise bad_file("tiny_imagenet", wnids_file, "lists no class ids")
    label_of = {wnid: index for index, wnid in enumerate(wnids)}

    train_paths: list[str] = []
    train_labels: list[int] = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise missing_data("tiny_imagenet", folder, f"class {wnid} of wnids.txt has no images")
        names = _images_in(folder)
        train_paths += [str(folder / name) for name in names]
        train_labels += [label_of[wnid]] * len(names)

    annotations = root / "val" / "val_annotations.txt"
    val_folder = root / "val" / "images"
    if not annotations.is_file() or not val_folder.is_dir():
        how = "expected val/images/ and val/val_annotations.txt as in the official zip"
        raise missing_data("tiny_imagenet", annotations, how)
    present = set(_images_in(val_folder))
    val_paths: list[str] = []
    val_labels: list[int] = []
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label_of:
            problem = f"line {number}: expected 'file<TAB>wnid<TAB>...' with a wnid of wnids.txt"
            raise bad_file("tiny_imagenet", annotations, f"{problem}, got {line!r}")
        if fields[0] not in present:
            raise bad_file(
                "tiny_imagenet", annotations, f"line {number}: no file val/images/{fields[0]}"
            )
        val_paths.append(str(val_folder / fields[0]))
        val_labels.append(label_of[fields[1]])
    return wnids, (train_paths, train_labels), (val_paths, val_labels)


def load_tiny_imagenet(ctx: DatasetContext, augment: bool = True, workers: int = 4) -> DatasetParts:
    """Tiny-ImageNet: 100,000 training images, the 10,000 ``val/`` images as the test set.

    Validation ``"paper"``: the ``val/`` (test) images, as in the paper's code.
    ``workers`` is the number of DataLoader processes; it is part of the run's identity
    because each worker draws the flips of the batches it loads.
    """
    if workers < 0:
        msg = f"dataset 'tiny_imagenet' parameter 'workers' must be >= 0, got {workers}"
        raise ParameterError(msg)
    from torchvision import transforms as T

    root = _locate(ctx)
    wnids, (train_paths, train_labels), (val_paths, val_labels) = read_tiny_imagenet(root)
    train_tf, eval_tf = image_transforms([T.RandomHorizontalFlip()] if augment else [], [])
    train = ImageFiles(train_paths, train_labels, train_tf, eval_tf)
    test = ImageFiles(val_paths, val_labels, eval_tf)
    notes = {
        "test_set": "the official val/ images (labels from val/val_annotations.txt)",
        "augmentation": "horizontal flip" if augment else "none",
        "normalize": "ImageNet mean/std",
    }
    val = test_as_validation(ctx, test, notes)
    return DatasetParts(
        train=train,
        test=test,
        val=val,
        input_shape=(3, 64, 64),
        num_classes=len(wnids),
        num_workers=workers,
        notes=notes,
    )
