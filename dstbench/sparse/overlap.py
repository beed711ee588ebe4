"""Structural similarity of pruning criteria (the paper's Fig. 6).

At a topology update every compared criterion is asked which weights it would prune, on the
*same* state (weights, mask, gradient), without changing that state: each gets its own
generator seeded from the run seed and the step, so the comparison neither perturbs the run's
random stream nor depends on the order in which criteria are listed. The pruned set of
criterion c is P_c; the overlap of a and b is the Jaccard index |P_a ∩ P_b| / |P_a ∪ P_b|,
reported per layer and pooled over all layers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import torch

from dstbench.registry import CriterionInfo
from dstbench.sparse.masker import Masker, MomentumLookup
from dstbench.sparse.ops import prune_positions
from dstbench.sparse.seeds import derive_seed

Compared = Sequence[tuple[str, CriterionInfo, Mapping[str, Any]]]


def pruned_sets(
    masker: Masker,
    compared: Compared,
    *,
    prune_fraction: float,
    step: int,
    seed: int,
    momentum: MomentumLookup | None = None,
    include_full: bool = False,
) -> dict[str, dict[str, torch.Tensor]]:
    """label -> layer -> bool tensor of the weights that criterion would prune now.

    Layers the update would skip (empty, or full: nowhere to grow) are left out, unless
    ``include_full`` (pruning without growth, as at initialisation). The masker is not modified.
    """
    result: dict[str, dict[str, torch.Tensor]] = {label: {} for label, _, _ in compared}
    for layer in masker.layers:
        active = layer.target
        if active == 0 or (active == layer.numel and not include_full):
            continue
        n = min(math.ceil(prune_fraction * active), active)
        for label, info, params in compared:
            generator = torch.Generator().manual_seed(derive_seed(seed, step, layer.name, label))
            buffer = momentum(layer.weight) if momentum is not None else None
            ctx = masker.context(layer, layer.mask, info, buffer, step, generator)
            result[label][layer.name] = prune_positions(info, params, ctx, n)
    return result


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a ∩ b| / |a ∪ b| of two bool tensors (1.0 when both are empty)."""
    union = int(torch.count_nonzero(a | b))
    return 1.0 if union == 0 else int(torch.count_nonzero(a & b)) / union


def overlap(sets: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    """Pairwise Jaccard indices: pooled over layers, and per layer.

    :returns: ``{"pooled": {"a|b": J, ...}, "layers": {layer: {"a|b": J, ...}}}``.
    """
    labels = sorted(sets)
    layers = sorted({layer for per_layer in sets.values() for layer in per_layer})
    pooled: dict[str, float] = {}
    by_layer: dict[str, dict[str, float]] = {layer: {} for layer in layers}
    for a, b in combinations(labels, 2):
        inter = union = 0
        for layer in layers:
            pa, pb = sets[a][layer], sets[b][layer]
            i, u = int(torch.count_nonzero(pa & pb)), int(torch.count_nonzero(pa | pb))
            inter, union = inter + i, union + u
            by_layer[layer][f"{a}|{b}"] = 1.0 if u == 0 else i / u
        pooled[f"{a}|{b}"] = 1.0 if union == 0 else inter / union
    return {"pooled": pooled, "layers": by_layer}
