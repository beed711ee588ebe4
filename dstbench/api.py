"""The public Python API: the registry, and prune/grow/layer_densities on plain tensors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dstbench.contracts.layers import LayerContext
from dstbench.errors import CriterionError
from dstbench.plugins import get_plugins
from dstbench.registry import ComponentInfo, CriterionInfo, GrowthInfo, Registry
from dstbench.sparse.densities import checked_layer_densities
from dstbench.sparse.ops import grow_positions, prune_positions


def registry(*, reload: bool = False) -> Registry:
    """Everything the loaded plugins registered: ``registry().criteria["magnitude"]`` etc.

    Each table maps a name to its info (``description``, ``params``, ``plugin``, ...).
    """
    return get_plugins(reload=reload).registry


def _lookup(kind: str, component: str | ComponentInfo) -> ComponentInfo:
    if isinstance(component, ComponentInfo):
        return component
    return registry().table(kind)[component.lower()]


def _count(n: int, available: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise CriterionError(f"n must be an int, got {n!r}")
    if not 0 <= n <= available:
        raise CriterionError(f"cannot {what} {n} positions: only {available} available")
    return n


def prune(
    criterion: str | CriterionInfo,
    weight: torch.Tensor,
    mask: torch.Tensor,
    n: int,
    *,
    grad: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    momentum: torch.Tensor | None = None,
    layer: str = "",
    step: int = 0,
    **params: Any,
) -> torch.Tensor:
    """A new bool mask with exactly ``n`` of ``mask``'s active positions turned off.

    The positions are the ``n`` lowest scores of ``criterion`` among active weights (ties at
    random with ``generator``). Nothing passed in is modified. (Criteria registered with
    ``exact=False``, such as the paper code's SET, may turn off another number of positions.)

    :param criterion: a registered criterion name (``"magnitude"``, ``"snip"``, ...) or info.
    :param params: the criterion's parameters (e.g. ``lam=0.1`` for ``mest``).
    """
    info = _lookup("criterion", criterion)
    assert isinstance(info, CriterionInfo)
    ctx = LayerContext(weight.detach(), mask, grad, momentum, layer, step, generator)
    _count(n, int(torch.count_nonzero(mask)), "prune")
    chosen = prune_positions(info, info.resolve_params(params), ctx, n)
    return mask & ~chosen


def grow(
    growth: str | GrowthInfo,
    mask: torch.Tensor,
    n: int,
    *,
    grad: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    momentum: torch.Tensor | None = None,
    layer: str = "",
    step: int = 0,
    **params: Any,
) -> torch.Tensor:
    """A new bool mask with exactly ``n`` inactive positions of ``mask`` turned on.

    (Growth methods registered with ``exact=False`` activate ``n`` only in expectation.)

    :param growth: a registered growth name (``"random"``, ``"gradient"``, ...) or info.
    :param weight: the layer's weights, for growth methods that read them (default: zeros).
    """
    info = _lookup("growth", growth)
    assert isinstance(info, GrowthInfo)
    w = weight.detach() if weight is not None else torch.zeros(mask.shape, device=mask.device)
    ctx = LayerContext(w, mask, grad, momentum, layer, step, generator)
    _count(n, int(torch.count_nonzero(~mask)), "grow")
    chosen = grow_positions(info, info.resolve_params(params), ctx, n)
    return mask | chosen


def layer_densities(
    distribution: str | ComponentInfo,
    shapes: Mapping[str, Sequence[int]],
    density: float,
    **params: Any,
) -> dict[str, float]:
    """{layer name: density} for weight ``shapes`` at global ``density``.

    :param distribution: a registered distribution name (``"erk"``, ...) or its info.
    :raises CriterionError: if the distribution returns a bad mapping (missing layers, values
        outside [0, 1], or a total that misses the global density).
    """
    return checked_layer_densities(_lookup("distribution", distribution), shapes, density, **params)
