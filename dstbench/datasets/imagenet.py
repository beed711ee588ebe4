"""ImageNet-1k in the ImageFolder layout.

Layout::

    <root>/imagenet/train/<wnid>/*.JPEG
    <root>/imagenet/val/<wnid>/*.JPEG

(the validation images sorted into class folders, e.g. with the widely used ``valprep.sh``
from the PyTorch ImageNet example). ImageNet cannot be downloaded automatically: get
``ILSVRC2012_img_train.tar`` and ``ILSVRC2012_img_val.tar`` from image-net.org.

As in the paper: training images get RandomResizedCrop(224) and a random flip; evaluation
images Resize(256) and CenterCrop(224); all are normalised with the ImageNet statistics.
The official ``val/`` set is the test set.
"""

from __future__ import annotations

from pathlib import Path

from dstbench.contracts.data import DatasetContext, DatasetParts
from dstbench.datasets.files import missing_data
from dstbench.datasets.images import ImageFiles, image_transforms
from dstbench.datasets.splits import test_as_validation
from dstbench.errors import DataError, ParameterError

FOLDER = "imagenet"
HOW = (
    "put ImageNet-1k in ImageFolder layout there (train/<wnid>/*.JPEG and val/<wnid>/*.JPEG; "
    "archives from https://image-net.org, validation images sorted into class folders)"
)


def _scan(folder: Path, classes: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not folder.is_dir():
        raise missing_data("imagenet", folder, HOW)
    found, _ = find_classes(str(folder))
    if classes is not None and found != classes:
        unknown = sorted(set(found) - set(classes))[:3]
        missing = sorted(set(classes) - set(found))[:3]
        msg = (
            f"dataset 'imagenet': {folder} must hold the same class folders as train/ "
            f"(extra: {unknown or 'none'}, missing: {missing or 'none'})"
        )
        raise DataError(msg)
    index = {name: i for i, name in enumerate(found)}
    try:
        samples = make_dataset(str(folder), index, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:
        raise missing_data("imagenet", folder, f"{exc}; {HOW}") from exc
    return found, [path for path, _ in samples], [label for _, label in samples]


def load_imagenet(
    ctx: DatasetContext, augment: bool = True, image_size: int = 224, workers: int = 8
) -> DatasetParts:
    """ImageNet-1k (ImageFolder layout); the official ``val/`` images are the test set.

    Validation ``"paper"``: the ``val/`` (test) images, as in the paper's code.
    """
    if workers < 0 or image_size < 32:
        msg = "dataset 'imagenet' parameters: need workers >= 0 and image_size >= 32"
        raise ParameterError(f"{msg}, got workers={workers}, image_size={image_size}")
    from torchvision import transforms as T

    root = ctx.root / FOLDER
    classes, train_paths, train_labels = _scan(root / "train", None)
    _, val_paths, val_labels = _scan(root / "val", classes)
    resize = round(image_size * 256 / 224)
    train_steps = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    eval_steps = [T.Resize(resize), T.CenterCrop(image_size)]
    train_tf, eval_tf = image_transforms(train_steps if augment else eval_steps, eval_steps)
    train = ImageFiles(train_paths, train_labels, train_tf, eval_tf)
    test = ImageFiles(val_paths, val_labels, eval_tf)
    notes = {
        "test_set": "the official val/ images",
        "augmentation": f"RandomResizedCrop({image_size}) + flip" if augment else "none",
        "eval_transform": f"Resize({resize}) + CenterCrop({image_size})",
        "normalize": "ImageNet mean/std",
    }
    val = test_as_validation(ctx, test, notes)
    return DatasetParts(
        train=train,
        test=test,
        val=val,
        input_shape=(3, image_size, image_size),
        num_classes=len(classes),
        num_workers=workers,
        notes=notes,
    )
