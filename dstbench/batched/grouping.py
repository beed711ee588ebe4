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
    # an overlap-at-initialisation run trains nothing: it falls back to the single engine
    "jaccard_at_init",
)

T = TypeVar("T")


def group_key(spec: Mapping[str, Any]) -> str:
    """A string equal for exactly the normalized specs that can train in one group."""
    return json.dumps({key: spec.get(key) for key in SHARED_KEYS}, sort_keys=True)


def auto_group(compatible: int, workers: int) -> int:
    """Group size for ``compatible`` runs over ``workers``: one group per worker. (The engine
    trains a group that would not fit its memory budget in consecutive parts, see
    :data:`dstbench.batched.engine.MEMORY_BUDGET`.)"""
    return max(1, -(-compatible // max(1, workers)))


def make_groups(
    items: Sequence[T], spec_of: Callable[[T], Mapping[str, Any]], size: int, workers: int = 1
) -> list[list[T]]:
    """Split ``items`` into groups of compatible runs of at most ``size`` runs each
    (``size`` 0: :func:`auto_group` over ``workers``).

    Items keep their order within a group, and compatible runs are spread evenly: 159 runs
    in groups of at most 80 make groups of 80 and 79, never 80, 79 by chance or 80, 1.
    """
    by_key: dict[str, list[T]] = {}
    for item in items:
        by_key.setdefault(group_key(spec_of(item)), []).append(item)
    groups: list[list[T]] = []
    for members in by_key.values():
        limit = size if size > 0 else auto_group(len(members), workers)
        count = -(-len(members) // limit)
        per = -(-len(members) // count)
        groups += [members[i : i + per] for i in range(0, len(members), per)]
    return groups
