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


#: Integer types of each element size, to read a tensor's bits.
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _fingerprint(tensor: torch.Tensor | None) -> tuple[int, ...] | None:
    """A cheap checksum of ``tensor``'s values (their bits, summed plain and by position) and
    its version counter, which every in-place torch operation bumps.

    Two sums of the raw bits catch any changed value and any moved one; the version counter
    catches writes that restore the values. The cost is two passes over the layer, once per
    topology update.
    """
    if tensor is None:
        return None
    flat = tensor.detach().reshape(-1)
    if flat.is_complex() or flat.element_size() not in _BITS:
        flat = flat.to(torch.float64)
    bits = flat.view(_BITS[flat.element_size()]).to(torch.int64)
    weights = torch.arange(1, bits.numel() + 1, dtype=torch.int64, device=bits.device)
    plain, weighted = int(bits.sum()), int((bits * weights).sum())
    return (tensor._version, plain, weighted)


def _fingerprints(ctx: LayerContext) -> dict[str, tuple[int, ...] | None]:
    return {
        "weight": _fingerprint(ctx.weight),
        "mask": _fingerprint(ctx.mask),
        "grad": _fingerprint(ctx.grad),
        "momentum": _fingerprint(ctx.momentum),
    }


def _check_untouched(
    info: ComponentInfo, ctx: LayerContext, before: dict[str, tuple[int, ...] | None]
) -> None:
    """Raise when the plugin changed one of its inputs in place (it must only read them)."""
    after = _fingerprints(ctx)
    changed = [name for name, value in before.items() if after[name] != value]
    if changed:
        names = ", ".join(f"ctx.{name}" for name in changed)
        msg = (
            f"{info.kind} {info.name!r} on layer {ctx.layer!r} modified {names} in place; "
            "criteria and growth methods must not change their inputs (work on a copy)"
        )
        raise CriterionError(msg)


def _call(info: ComponentInfo, ctx: LayerContext, *args: Any, **params: Any) -> Any:
    """``info.fn(ctx, *args, **params)``, failing when it modified the context's tensors."""
    before = _fingerprints(ctx)
    result = info.fn(ctx, *args, **params)
    _check_untouched(info, ctx, before)
    return result


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
    if scores.dtype == torch.bool or scores.is_complex():
        msg = (
            f"{info.kind} {info.name!r} on layer {layer!r}: scores must be real numbers, got "
            f"a {str(scores.dtype).removeprefix('torch.')} tensor"
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
        chosen = _call(info, ctx, n, **params)
        return _check_selection(info, chosen, ctx.mask, n if info.exact else None, ctx.layer)
    scores = _call(info, ctx, **params)
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
        chosen = _call(info, ctx, n, **params)
        return _check_selection(info, chosen, inactive, n if info.exact else None, ctx.layer)
    scores = _call(info, ctx, **params)
    _check_scores(info, scores, ctx.weight.shape, ctx.layer)
    what = f"growth {info.name!r} scores on layer {ctx.layer!r}"
    return select(scores, inactive, n, largest=True, generator=ctx.generator, what=what)
