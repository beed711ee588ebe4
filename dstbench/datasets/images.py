"""A ``Dataset`` of image files for the large datasets (Tiny-ImageNet, ImageNet).

Samples are decoded with PIL and transformed by torchvision transforms in DataLoader
workers. Paths and labels are kept in numpy arrays, not Python lists of tuples, so that
forked workers do not copy them page by page as reference counts change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

ImageTransform = Callable[[Any], torch.Tensor]

#: The ImageNet channel statistics used by the paper's Tiny-ImageNet and ImageNet loaders.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageFiles(Dataset[tuple[torch.Tensor, int]]):
    """Image files with integer labels; ``transform`` for training, ``eval_transform`` for
    the unaugmented view (:meth:`unaugmented`, used for held-out validation samples).
    """

    def __init__(
        self,
        paths: Sequence[str] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        transform: ImageTransform,
        eval_transform: ImageTransform | None = None,
    ) -> None:
        self.paths = np.asarray(paths, dtype=np.str_)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.paths.shape != self.labels.shape:
            msg = f"{self.paths.shape[0]} paths but {self.labels.shape[0]} labels"
            raise ValueError(msg)
        self.transform = transform
        self.eval_transform = eval_transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """The transformed RGB image and its label."""
        from PIL import Image

        with Image.open(str(self.paths[index])) as image:
            rgb = image.convert("RGB")
        return self.transform(rgb), int(self.labels[index])

    def unaugmented(self) -> ImageFiles:
        """The same files with the evaluation transform."""
        transform = self.eval_transform or self.transform
        return ImageFiles(self.paths, self.labels, transform, transform)


def image_transforms(
    train: Sequence[Any], evaluate: Sequence[Any]
) -> tuple[ImageTransform, ImageTransform]:
    """``(train, eval)`` torchvision pipelines: the given steps, then ToTensor + Normalize."""
    from torchvision import transforms as T

    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose([*train, *tail]), T.Compose([*evaluate, *tail])
