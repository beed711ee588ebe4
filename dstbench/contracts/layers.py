"""What criterion, growth and observer plugins see of a model's sparse layers.

The tensors in these objects are the engine's own: a plugin must treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LayerContext:
    """What a criterion or growth method sees of one sparse layer."""

    #: The layer's weight tensor (inactive positions are exactly zero).
    weight: torch.Tensor
    #: Bool mask of active positions. For growth: the mask *after* this update's pruning.
    mask: torch.Tensor
    #: Dense gradient of the current mini-batch (all positions), or None when not needed.
    grad: torch.Tensor | None = None
    #: The optimizer's momentum buffer for this weight, or None (not needed / not yet built).
    momentum: torch.Tensor | None = None
    #: The layer's name (e.g. ``"layers.0.weight"``).
    layer: str = ""
    #: Training iteration of this update (1-based; 0 outside training).
    step: int = 0
    #: The run's seeded generator, for criteria that need randomness of their own.
    generator: torch.Generator | None = None


#: The context handed to pruning criteria.
CriterionContext = LayerContext
#: The context handed to growth methods.
GrowthContext = LayerContext


@dataclass
class LayerUpdate:
    """What one topology update did to one layer."""

    name: str
    pruned: torch.Tensor
    grown: torch.Tensor
    n_pruned: int
    n_grown: int
    #: Positions pruned and grown back in the same update (weight and momentum kept).
    n_regrown: int
    active: int
    #: The count the criterion was asked to prune, ``ceil(ζ·active)``; differs from
    #: ``n_pruned`` only for criteria registered with ``exact=False``.
    n_requested: int = 0


@dataclass
class TopologyUpdate:
    """One prune-and-grow update over all sparse layers."""

    step: int
    prune_fraction: float
    layers: list[LayerUpdate]

    @property
    def n_pruned(self) -> int:
        """Total weights pruned (selection count)."""
        return sum(u.n_pruned for u in self.layers)

    @property
    def n_grown(self) -> int:
        """Total weights grown (selection count)."""
        return sum(u.n_grown for u in self.layers)

    def summary(self) -> dict[str, Any]:
        """Counts only, JSON-ready (the result record keeps one per update)."""
        return {
            "step": self.step,
            "prune_fraction": self.prune_fraction,
            "requested": sum(u.n_requested for u in self.layers),
            "pruned": self.n_pruned,
            "grown": self.n_grown,
            "regrown": sum(u.n_regrown for u in self.layers),
        }


class SparseLayerView(Protocol):
    """One sparse weight as observers see it."""

    name: str
    #: Bool mask of active positions.
    mask: torch.Tensor
    #: Active count the layer holds at every update.
    target: int

    @property
    def numel(self) -> int:
        """Number of positions in the layer."""
        ...


class MaskView(Protocol):
    """A run's masks as observers see them (``RunContext.masker``)."""

    @property
    def layers(self) -> Sequence[SparseLayerView]:
        """The sparse layers, in model order."""
        ...

    def density(self) -> float:
        """Active weights over all sparse weights."""
        ...

    def layer_densities(self) -> dict[str, float]:
        """Each layer's active fraction."""
        ...
