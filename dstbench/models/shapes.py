"""Input-shape checks shared by the model factories.

A model that cannot take a dataset's input fails here, with the model's name, the shape it
was given and what it needs, instead of with a shape error deep inside torch.
"""

from __future__ import annotations

from collections.abc import Sequence

from dstbench.errors import DstbenchError


class InputShapeError(DstbenchError):
    """A model cannot take the dataset's input shape or class count."""


def image_shape(
    model: str,
    input_shape: Sequence[int],
    *,
    min_size: int,
    channels: int | None = None,
) -> tuple[int, int, int]:
    """``(C, H, W)`` of ``input_shape``, checked against what ``model`` can take.

    :param min_size: the smallest height and width the architecture can reduce without
        reaching an empty feature map.
    :param channels: the only channel count the architecture takes, if fixed.
    :raises InputShapeError: for a non-image shape, too few pixels or the wrong channels.
    """
    shape = tuple(int(d) for d in input_shape)
    need = f"(C, H, W) images with H, W >= {min_size}"
    if channels is not None:
        need = f"({channels}, H, W) images with H, W >= {min_size}"
    if len(shape) != 3:
        msg = f"model {model!r} needs {need}; the dataset gives inputs of shape {shape}"
        raise InputShapeError(msg)
    c, h, w = shape
    if min(h, w) < min_size or (channels is not None and c != channels):
        msg = f"model {model!r} needs {need}; the dataset gives inputs of shape {shape}"
        raise InputShapeError(msg)
    return c, h, w


def class_count(model: str, num_classes: int) -> int:
    """``num_classes``, checked to be at least 2."""
    if num_classes < 2:
        msg = f"model {model!r} needs at least 2 classes, the dataset has {num_classes}"
        raise InputShapeError(msg)
    return num_classes


#: Widest layer a built-in model accepts: far beyond any dense benchmark, yet wide enough for
#: the sparse engine, which trains layers whose dense weight would not fit in memory
#: (``benchmarks/sparse_memory.py``: two hidden layers of 100,000).
MAX_WIDTH = 1 << 20


def check_width(model: str, param: str, width: object) -> int:
    """A layer width: an integer in [1, :data:`MAX_WIDTH`].

    :raises InputShapeError: naming the model and parameter otherwise (before any allocation).
    """
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        msg = f"model {model!r}: {param} must be an integer in [1, {MAX_WIDTH}], got {width!r}"
        raise InputShapeError(msg)
    return width
