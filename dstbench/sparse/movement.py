"""Mask movement: how far a run's final topology is from its initial one.

The paper finds the final DST masks "significantly different from initial sparse
configurations", even with few updates. The engine keeps a copy of each layer's initial mask
and records, at the end, the fraction of the initially active weights that are still active
(*retained*), per layer and over all layers (active counts summed). Static runs retain 1 by
construction; a retained fraction near the density means the mask moved as far as a random
redraw would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def snapshot(masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of the topologies (layer name -> bool mask or sorted positions), kept on their
    device."""
    return {name: mask.detach().clone() for name, mask in masks.items()}


def _active_and_kept(start: torch.Tensor, end: torch.Tensor) -> tuple[int, int]:
    """Active positions of ``start`` and how many of them ``end`` keeps. A topology is a bool
    mask, or (a layer the sparse engine holds as values and positions) its sorted positions."""
    if start.dtype == torch.bool:
        return int(torch.count_nonzero(start)), int(torch.count_nonzero(start & end))
    return start.numel(), int(torch.count_nonzero(torch.isin(start, end, assume_unique=True)))


def mask_movement(
    initial: Mapping[str, torch.Tensor], final: Mapping[str, torch.Tensor]
) -> dict[str, Any]:
    """The record's ``mask_movement`` block: retained fraction per layer and overall."""
    layers: dict[str, float] = {}
    kept_total = active_total = 0
    for name, start in initial.items():
        active, kept = _active_and_kept(start, final[name])
        kept_total, active_total = kept_total + kept, active_total + active
        layers[name] = 1.0 if active == 0 else kept / active
    retained = 1.0 if active_total == 0 else kept_total / active_total
    return {"retained": retained, "layers": layers}


def retained(record: Mapping[str, Any]) -> float | None:
    """The overall retained fraction a record holds (None when it has none)."""
    block = record.get("mask_movement")
    if not isinstance(block, Mapping):
        return None
    value = block.get("retained")
    return float(value) if isinstance(value, (int, float)) else None
