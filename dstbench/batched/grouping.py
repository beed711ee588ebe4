"""Which runs can train together, and how a list of runs splits into groups.

Runs train together when everything their shared step depends on is equal: the model and its
parameters, the dataset and its parameters, the epochs and batch size, the optimizer and its
learning-rate schedule, and the validation split. Everything else may differ within a group:
seed, method (dense, static, DST), criterion, growth, density, distribution, schedule, ΔT,
ζ₀, dense first/last layer, mask initialisation, update order, momentum reset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

#: The spec keys a group shares.
SHARED_KEYS: tuple[str, ...] = (
    "model",
    "dataset",
    "epochs",
    "batch_size",
    "lr",
    "momentum",
    "nesterov",
    "weight_decay",
    "lr_milestones",
    "lr_gamma",
    "val_fraction",
    "validation",
)

T = TypeVar("T")


def group_key(spec: Mapping[str, Any]) -> str:
    """A string equal for exactly the normalized specs that can train in one group."""
    return json.dumps({key: spec.get(key) for key in SHARED_KEYS}, sort_keys=True)


def make_groups(
    items: Sequence[T], spec_of: Callable[[T], Mapping[str, Any]], size: int
) -> list[list[T]]:
    """Split ``items`` into groups of compatible runs of at most ``size`` (``size`` >= 1).

    Items keep their order within a group; compatible runs are spread evenly, so that 159
    runs in groups of at most 80 give groups of 80 and 79, not 80, 79 by accident or 80, 1.
    """
    by_key: dict[str, list[T]] = {}
    for item in items:
        by_key.setdefault(group_key(spec_of(item)), []).append(item)
    groups: list[list[T]] = []
    for members in by_key.values():
        count = -(-len(members) // max(1, size))
        per = -(-len(members) // count)
        groups += [members[i : i + per] for i in range(0, len(members), per)]
    return groups
