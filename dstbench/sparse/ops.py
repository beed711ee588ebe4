"""Prune and grow one layer: calls a criterion or growth plugin and checks what it returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from dstbench.contracts.layers import LayerContext
from dstbench.errors import CriterionError
from dstbench.registry import ComponentInfo, CriterionInfo, GrowthInfo
from dstbench.sparse.selection import select


def _check_inputs(info: ComponentInfo, ctx: LayerContext, needs_grad: bool) -> None:
    if ctx.mask.dtype != torch.bool:
        msg = f"mask must be a bool tensor, got {ctx.mask.dtype}"
        raise CriterionError(msg)
    if ctx.mask.shape != ctx.weight.shape:
        msg = f"mask shape {tuple(ctx.mask.shape)} != weight shape {tuple(ctx.weight.shape)}"
        raise CriterionError(msg)
    if needs_grad and ctx.grad is None:
        msg = f"{info.kind} {info.name!r} needs the gradient: pass grad="
        raise CriterionError(msg)


def _check_selection(
    info: ComponentInfo, chosen: Any, allowed: torch.Tensor, n: int | None, layer: str
) -> torch.Tensor:
    where = f"{info.kind} {info.name!r} on layer {layer!r}"
    if not isinstance(chosen, torch.Tensor) or chosen.dtype != torch.bool:
        msg = f"{where}: the selection form must return a bool tensor"
        raise CriterionError(msg)
    if chosen.shape != allowed.shape:
        msg = f"{where}: returned shape {tuple(chosen.shape)}, expected {tuple(allowed.shape)}"
        raise CriterionError(msg)
    if bool((chosen & ~allowed).any()):
        target = "inactive" if info.kind == "criterion" else "active"
        msg = f"{where}: selected {target} positions"
        raise CriterionError(msg)
    if n is not None:
        count = int(torch.count_nonzero(chosen))
        if count != n:
            msg = (
                f"{where}: selected {count} positions, expected exactly {n} (register it with "
                "exact=False if the count is inexact by design)"
            )
            raise CriterionError(msg)
    return chosen


def _check_scores(info: ComponentInfo, scores: Any, shape: torch.Size, layer: str) -> None:
    if not isinstance(scores, torch.Tensor) or scores.shape != shape:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        msg = (
            f"{info.kind} {info.name!r} on layer {layer!r}: scores must be a tensor of shape "
            f"{tuple(shape)}, got {got}"
        )
        raise CriterionError(msg)


@torch.no_grad()
def prune_positions(
    info: CriterionInfo, params: Mapping[str, Any], ctx: LayerContext, n: int
) -> torch.Tensor:
    """The active positions ``info`` chooses to prune (bool tensor), state untouched.

    Exactly ``n`` of them, unless the criterion is registered with ``exact=False`` (selection
    form only): then any subset of the active positions, and the caller regrows its count.
    """
    _check_inputs(info, ctx, info.needs_grad)
    if info.selects:
        chosen = info.fn(ctx, n, **params)
        return _check_selection(info, chosen, ctx.mask, n if info.exact else None, ctx.layer)
    scores = info.fn(ctx, **params)
    _check_scores(info, scores, ctx.weight.shape, ctx.layer)
    what = f"criterion {info.name!r} scores on layer {ctx.layer!r}"
    return select(scores, ctx.mask, n, largest=False, generator=ctx.generator, what=what)


@torch.no_grad()
def grow_positions(
    info: GrowthInfo, params: Mapping[str, Any], ctx: LayerContext, n: int
) -> torch.Tensor:
    """The inactive positions ``info`` chooses to activate (exactly ``n`` if ``info.exact``)."""
    _check_inputs(info, ctx, info.needs_grad)
    inactive = ~ctx.mask
    if info.selects:
        chosen = info.fn(ctx, n, **params)
        return _check_selection(info, chosen, inactive, n if info.exact else None, ctx.layer)
    scores = info.fn(ctx, **params)
    _check_scores(info, scores, ctx.weight.shape, ctx.layer)
    what = f"growth {info.name!r} scores on layer {ctx.layer!r}"
    return select(scores, inactive, n, largest=True, generator=ctx.generator, what=what)
