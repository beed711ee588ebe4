"""Helpers for the paper's own train/validation splits (``validation = "paper"``)."""

from __future__ import annotations

import math
from typing import Any

from dstbench.contracts.data import DatasetContext, Split, TensorSplit

#: The paper code's ``valid_split``: the last 10% of the training set, not shuffled.
PAPER_VALID_SPLIT = 0.1


def last_fraction(split: TensorSplit, fraction: float) -> tuple[TensorSplit, TensorSplit]:
    """``(head, tail)``: the tail holds the last ``fraction`` of the samples, unshuffled.

    The boundary is ``floor((1 - fraction) · N)``, as in the paper's code (45,000 / 5,000 on
    CIFAR-10, 54,000 / 6,000 on Fashion-MNIST).
    """
    boundary = math.floor((1.0 - fraction) * len(split))
    head = TensorSplit(split.x[:boundary], split.y[:boundary])
    tail = TensorSplit(split.x[boundary:], split.y[boundary:])
    return head, tail


def test_as_validation(ctx: DatasetContext, test: Split, notes: dict[str, Any]) -> Split | None:
    """The paper's choice for datasets it validated on the test set (CIFAR-100, Tiny-ImageNet,
    ImageNet): with ``validation = "paper"`` the test split doubles as validation, noted in
    ``notes``; otherwise None (the engine carves validation out of the training set).
    """
    if ctx.validation != "paper":
        return None
    notes["validation"] = "paper: the val/ images, which are also the test set"
    return test
