"""What the built-in datasets are without their files: input shape, classes, training samples.

``dstbench suite --dry-run`` estimates steps and MACs from these when a dataset's files are
not there yet (before ``--download``). The numbers are those of the official releases, which
the loaders check when they read the files.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetSize:
    """A dataset's shape and size, known without reading it."""

    input_shape: tuple[int, ...]
    num_classes: int
    #: Training samples the loader returns under ``validation = "split"`` (before the
    #: engine carves its validation split from them).
    train: int
    #: Training samples under ``validation = "paper"`` (the dataset's own validation split
    #: taken out, when it takes one from the training set).
    paper_train: int

    def train_samples(self, validation: str, val_fraction: float) -> int:
        """Samples trained on per epoch: the engine's carve in ``split`` mode (as
        :func:`dstbench.engine.data.carve_validation` does it), the paper's own split else."""
        if validation == "paper":
            return self.paper_train
        return self.train - round(val_fraction * self.train)


#: The built-in datasets whose files may be missing (``digits`` is bundled with scikit-learn;
#: ``higgs`` depends on the file given).
BUILTIN_SIZES: dict[str, DatasetSize] = {
    "cifar10": DatasetSize((3, 32, 32), 10, 50_000, 45_000),
    "cifar100": DatasetSize((3, 32, 32), 100, 50_000, 50_000),
    "fashion_mnist": DatasetSize((1, 28, 28), 10, 60_000, 54_000),
    "tiny_imagenet": DatasetSize((3, 64, 64), 200, 100_000, 100_000),
    "imagenet": DatasetSize((3, 224, 224), 1000, 1_281_167, 1_281_167),
}
