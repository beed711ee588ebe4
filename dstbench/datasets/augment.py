"""Batched image augmentation and normalisation with tensor ops (CPU or CUDA).

:class:`RandomCropFlip` is the paper's CIFAR augmentation (pad 4, random 32×32 crop, random
horizontal flip) for a whole batch at once: one random draw per sample from the run's
generator, then a single ``gather`` that reads every output pixel from its source position.
Reflect padding never materialises a padded image (the source index is reflected);
constant padding copies the batch into a preallocated padded buffer whose border was filled
once. All index and output buffers are allocated on first use and reused, so a training step
allocates nothing but a few tiny temporaries.

The random draws are made on the generator's device (the engine's is on the CPU) and copied
to the data's device, so a seed gives the same crops and flips on every device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PADDING_MODES = ("reflect", "constant")


def normalize_images(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel."""
    out = images.to(torch.float32).div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return out.sub_(mean_t).div_(std_t)


def zero_fill(mean: Sequence[float], std: Sequence[float]) -> tuple[float, ...]:
    """The normalised value of a black (0) pixel per channel: ``-mean / std``.

    Padding with zeros *before* normalisation (torchvision's ``RandomCrop(padding=4)`` on
    images) is padding with this value after it.
    """
    return tuple(-m / s for m, s in zip(mean, std, strict=True))


class RandomCropFlip:
    """Random crop of the padded image and random horizontal flip, per sample, batched.

    For every sample: draw offsets ``dy, dx`` uniformly in ``[0, 2·padding]`` and a flip
    bit, and return ``flip(pad(x)[dy:dy+H, dx:dx+W])``, the same as torchvision's
    ``RandomCrop(H, padding, padding_mode)`` followed by ``RandomHorizontalFlip()``.

    :param padding: pixels added on each side (0: flip only).
    :param padding_mode: ``"reflect"`` (mirror without repeating the edge, as ``F.pad``) or
        ``"constant"``.
    :param fill: the constant per channel (one value, or one per channel), for
        ``"constant"``; see :func:`zero_fill` for normalised images.
    :param flip: whether to flip horizontally with probability 1/2.

    The returned tensor is a reused buffer, overwritten by the next call.
    """

    def __init__(
        self,
        padding: int = 4,
        padding_mode: str = "reflect",
        fill: Sequence[float] | float = 0.0,
        flip: bool = True,
    ) -> None:
        if padding < 0:
            msg = f"padding must be >= 0, got {padding}"
            raise ValueError(msg)
        if padding_mode not in PADDING_MODES:
            msg = f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}"
            raise ValueError(msg)
        self.padding = padding
        self.padding_mode = padding_mode
        self.fill = (float(fill),) if isinstance(fill, (int, float)) else tuple(fill)
        self.flip = flip
        self._key: tuple[object, ...] | None = None

    def __repr__(self) -> str:
        return (
            f"RandomCropFlip(padding={self.padding}, padding_mode={self.padding_mode!r}, "
            f"fill={self.fill}, flip={self.flip})"
        )

    def _allocate(self, x: torch.Tensor, generator: torch.Generator) -> None:
        n, c, h, w = x.shape
        p, dev = self.padding, x.device
        if p >= min(h, w) and self.padding_mode == "reflect":
            msg = f"reflect padding {p} needs images larger than {p} pixels, got {h}x{w}"
            raise ValueError(msg)
        self._capacity = n
        # Draws dy, dx, flip for n samples live in the first 3n entries (contiguous), made
        # on the generator's device and mirrored on the data's.
        self._draws = torch.zeros(3 * n, dtype=torch.long, device=generator.device)
        self._draws_dev = (
            self._draws if generator.device == dev else torch.zeros_like(self._draws, device=dev)
        )
        self._arange_h = torch.arange(h, device=dev)
        self._arange_w = torch.arange(w, device=dev)
        #: Added to the column index of flipped samples: j -> w - 1 - j.
        self._flip_delta = (w - 1) - 2 * self._arange_w
        self._rows = torch.empty((n, h), dtype=torch.long, device=dev)
        self._cols = torch.empty((n, w), dtype=torch.long, device=dev)
        self._index = torch.empty((n, h, w), dtype=torch.long, device=dev)
        self._out = torch.empty_like(x)
        self._padded: torch.Tensor | None = None
        if self.padding_mode == "constant" and p > 0:
            if len(self.fill) not in (1, c):
                msg = f"fill has {len(self.fill)} values for {c} channels"
                raise ValueError(msg)
            fill = torch.tensor(self.fill, dtype=x.dtype, device=dev).view(1, -1, 1, 1)
            self._padded = fill.expand(n, c, h + 2 * p, w + 2 * p).contiguous()
        self._key = (tuple(x.shape[1:]), x.dtype, dev, generator.device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The augmented batch ``x`` (N, C, H, W), drawing from ``generator``."""
        n, c, h, w = x.shape
        key = (tuple(x.shape[1:]), x.dtype, x.device, generator.device)
        if key != self._key or n > self._capacity:
            self._allocate(x, generator)
        p = self.padding
        draws = self._draws[: 3 * n].view(3, n)
        if p > 0:
            torch.randint(0, 2 * p + 1, (n,), generator=generator, out=draws[0])
            torch.randint(0, 2 * p + 1, (n,), generator=generator, out=draws[1])
        if self.flip:
            torch.randint(0, 2, (n,), generator=generator, out=draws[2])
        if self._draws_dev is not self._draws:
            # A tiny copy from pageable memory: staged at once (reusing the host buffer next
            # call is safe) and the host does not wait for the device.
            self._draws_dev[: 3 * n].copy_(self._draws[: 3 * n], non_blocking=True)
        dy, dx, flipped = self._draws_dev[: 3 * n].view(3, n)

        rows, cols = self._rows[:n], self._cols[:n]
        torch.add(dy[:, None], self._arange_h, out=rows)
        torch.mul(flipped[:, None], self._flip_delta, out=cols)
        cols.add_(self._arange_w).add_(dx[:, None])
        if self._padded is not None:
            source = self._padded[:n]
            source[:, :, p : p + h, p : p + w].copy_(x)
            width = w + 2 * p
        else:
            source = x.contiguous()
            width = w
            if p > 0:  # reflect: i in [-p, h-1+p] -> (h-1) - |(h-1) - |i||
                rows.sub_(p).abs_().sub_(h - 1).abs_().neg_().add_(h - 1)
                cols.sub_(p).abs_().sub_(w - 1).abs_().neg_().add_(w - 1)
        index = self._index[:n]
        torch.add(rows.mul_(width)[:, :, None], cols[:, None, :], out=index)
        out = self._out[:n]
        torch.gather(
            source.view(n, c, -1),
            2,
            index.view(n, 1, h * w).expand(n, c, h * w),
            out=out.view(n, c, h * w),
        )
        return out
