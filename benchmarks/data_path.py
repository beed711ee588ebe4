"""The in-memory tensor data path vs a plain DataLoader, on CIFAR-sized data.

Both produce the same thing per epoch: shuffled batches of 128 normalised 3×32×32 images with
the paper's CIFAR-10 augmentation (reflect-pad 4, random 32×32 crop, random horizontal flip),
delivered on the training device.

- tensor path: dstbench's ``TensorBatches`` over the split held on the device, with the
  batched ``RandomCropFlip`` (gather into reused buffers);
- DataLoader: ``torch.utils.data.DataLoader`` over a Dataset that augments each sample with
  torchvision's ``v2.RandomCrop(32, padding=4, padding_mode="reflect")`` and
  ``v2.RandomHorizontalFlip()``, with worker processes and (on CUDA) pinned memory.

Epochs alternate between the two after one untimed warm-up epoch each; the median epoch time
of each is reported, and the ratio (DataLoader / tensor path) is the last line.

    python benchmarks/data_path.py [--n 50000] [--epochs 3] [--workers 2] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset

from dstbench.contracts.data import TensorSplit
from dstbench.datasets.augment import RandomCropFlip
from dstbench.engine.data import TensorBatches

BATCH = 128


class AugmentingDataset(Dataset):
    """Per-sample augmentation, the usual torchvision way."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from torchvision.transforms import v2

        self.x, self.y = x, y
        self.transform = v2.Compose(
            [v2.RandomCrop(32, padding=4, padding_mode="reflect"), v2.RandomHorizontalFlip()]
        )

    def __len__(self) -> int:
        return self.y.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.x[index]), self.y[index]


def consume(batches, device: torch.device) -> float:
    """Run one epoch, touching every batch on the device; seconds taken."""
    started = time.perf_counter()
    total = torch.zeros((), device=device)
    for xb, yb in batches:
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        total += xb[:, 0, 0, 0].sum() + yb.sum()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    float(total)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="training images (CIFAR: 50,000)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)

    tensor_batches = TensorBatches(
        TensorSplit(x, y).to(device),
        BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
        transform=RandomCropFlip(4, "reflect"),
    )
    loader = DataLoader(
        AugmentingDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    print(
        f"{args.n} images 3x32x32, batch {BATCH}, device {device}, "
        f"DataLoader workers {args.workers}, torch threads {torch.get_num_threads()}"
    )
    consume(tensor_batches, device)  # warm-up: allocation, worker start-up
    consume(loader, device)
    times: dict[str, list[float]] = {"tensor path": [], "DataLoader": []}
    for epoch in range(args.epochs):
        times["tensor path"].append(consume(tensor_batches, device))
        times["DataLoader"].append(consume(loader, device))
        print(
            f"epoch {epoch + 1}: tensor path {times['tensor path'][-1]:.3f} s, "
            f"DataLoader {times['DataLoader'][-1]:.3f} s"
        )
    tensor = statistics.median(times["tensor path"])
    plain = statistics.median(times["DataLoader"])
    print(f"median epoch: tensor path {tensor:.3f} s, DataLoader {plain:.3f} s")
    print(f"ratio DataLoader / tensor path (median epoch time): {plain / tensor:.1f}x")


if __name__ == "__main__":
    main()
