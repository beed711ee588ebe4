"""The Masker: which weights are sparse, their exact masks, and the prune-and-grow update."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn

from dstbench.contracts.layers import LayerContext, LayerUpdate, TopologyUpdate
from dstbench.errors import SpecError
from dstbench.registry import CriterionInfo, GrowthInfo
from dstbench.sparse.ops import grow_positions, prune_positions

MaskInit = Literal["exact", "bernoulli"]

#: Module types whose ``weight`` is sparsified: Linear and every Conv/ConvTranspose.
SPARSE_MODULE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)


def sparse_parameters(
    model: nn.Module, *, dense_first: bool = False, dense_last: bool = False
) -> list[tuple[str, nn.Parameter]]:
    """The weights dstbench sparsifies, in module order: Linear and Conv weights only.

    Biases and normalisation layers are never sparse. A weight shared between modules is
    listed once. ``dense_first``/``dense_last`` leave the first/last such layer dense.
    """
    seen: set[int] = set()
    found: list[tuple[str, nn.Parameter]] = []
    for module_name, module in model.named_modules():
        if isinstance(module, SPARSE_MODULE_TYPES):
            weight = cast(nn.Parameter, module.weight)
            if id(weight) in seen:
                continue
            seen.add(id(weight))
            found.append((f"{module_name}.weight" if module_name else "weight", weight))
    if dense_first and found:
        found = found[1:]
    if dense_last and found:
        found = found[:-1]
    return found


@dataclass
class SparseLayer:
    """One sparse weight and its mask."""

    name: str
    weight: nn.Parameter
    #: Bool mask of active positions.
    mask: torch.Tensor
    #: The same mask in the weight's dtype, for fused multiplication in the optimizer.
    float_mask: torch.Tensor
    #: Active count the layer must hold at every update.
    target: int

    @property
    def numel(self) -> int:
        """Number of positions in the layer."""
        return self.weight.numel()


MomentumLookup = Callable[[nn.Parameter], "torch.Tensor | None"]


class Masker:
    """Holds the masks of a model's sparse weights and updates them.

    Masks are exact: layer l holds ``round(d_l · N_l)`` active weights chosen uniformly at
    random (``mask_init="bernoulli"`` samples each position independently instead, as the
    paper's code does). Inactive weights are exactly zero; the engine's optimizer keeps them
    so by multiplying its update by the mask.
    """

    def __init__(
        self,
        layers: list[tuple[str, nn.Parameter]],
        densities: Mapping[str, float],
        *,
        generator: torch.Generator,
        mask_init: MaskInit = "exact",
    ) -> None:
        self.generator = generator
        self.layers: list[SparseLayer] = []
        for name, weight in layers:
            density = densities[name]
            mask = self._initial_mask(weight, density, mask_init)
            # The target is the distribution's count, not a reading of the mask, so that the
            # invariant check compares two independent numbers.
            target = (
                round(density * weight.numel())
                if mask_init == "exact"
                else int(torch.count_nonzero(mask))
            )
            self.layers.append(
                SparseLayer(
                    name=name,
                    weight=weight,
                    mask=mask,
                    float_mask=mask.to(weight.dtype),
                    target=target,
                )
            )
        self.apply()

    def _initial_mask(self, weight: torch.Tensor, density: float, mode: MaskInit) -> torch.Tensor:
        numel = weight.numel()
        if mode == "bernoulli":
            flat = torch.rand(numel, generator=self.generator) < density
        elif mode == "exact":
            flat = torch.zeros(numel, dtype=torch.bool)
            flat[torch.randperm(numel, generator=self.generator)[: round(density * numel)]] = True
        else:  # specs come from files: check at run time
            msg = f"mask_init must be 'exact' or 'bernoulli', got {mode!r}"  # type: ignore[unreachable]
            raise SpecError(msg)
        return flat.view_as(weight).to(weight.device)

    # --- state ---------------------------------------------------------------------------

    @property
    def weights(self) -> list[torch.Tensor]:
        """The sparse weights, in layer order."""
        return [layer.weight for layer in self.layers]

    def float_masks(self) -> dict[torch.Tensor, torch.Tensor]:
        """weight -> mask in the weight's dtype (the optimizer multiplies its update by it)."""
        return {layer.weight: layer.float_mask for layer in self.layers}

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every inactive weight (one fused multiply over all layers)."""
        if self.layers:
            torch._foreach_mul_(self.weights, [layer.float_mask for layer in self.layers])

    def total(self) -> int:
        """Total number of sparse positions."""
        return sum(layer.numel for layer in self.layers)

    def active(self) -> int:
        """Total number of active positions (host sync)."""
        return sum(int(torch.count_nonzero(layer.mask)) for layer in self.layers)

    def density(self) -> float:
        """Achieved global density over the sparse layers."""
        total = self.total()
        return self.active() / total if total else 1.0

    def layer_densities(self) -> dict[str, float]:
        """Achieved density per layer."""
        return {
            layer.name: int(torch.count_nonzero(layer.mask)) / layer.numel for layer in self.layers
        }

    def topology(self) -> dict[str, torch.Tensor]:
        """Each layer's active positions (its bool mask), for mask movement and checkpoints."""
        return {layer.name: layer.mask for layer in self.layers}

    @torch.no_grad()
    def restore_topology(self, saved: Mapping[str, torch.Tensor]) -> None:
        """Set the masks to ``saved`` (what :meth:`topology` returned)."""
        for layer in self.layers:
            layer.mask.copy_(saved[layer.name])
            layer.float_mask.copy_(layer.mask)

    # --- the update ----------------------------------------------------------------------

    def context(
        self,
        layer: SparseLayer,
        mask: torch.Tensor,
        info: CriterionInfo | GrowthInfo,
        momentum_buffer: torch.Tensor | None,
        step: int,
        generator: torch.Generator | None = None,
    ) -> LayerContext:
        """What ``info`` may see of ``layer``: the gradient and momentum only if it declared
        them. ``generator`` defaults to the masker's own (the run's topology stream).
        """
        return LayerContext(
            weight=layer.weight.detach(),
            mask=mask,
            grad=layer.weight.grad if info.needs_grad else None,
            momentum=momentum_buffer if info.needs_momentum else None,
            layer=layer.name,
            step=step,
            generator=generator or self.generator,
        )

    @torch.no_grad()
    def update(
        self,
        *,
        step: int,
        prune_fraction: float,
        criterion: CriterionInfo,
        criterion_params: Mapping[str, Any],
        growth: GrowthInfo,
        growth_params: Mapping[str, Any],
        momentum: MomentumLookup | None = None,
        reset_momentum: bool = True,
    ) -> TopologyUpdate:
        """Prune ``ceil(ζ·active)`` weights per layer by ``criterion``, grow as many by ``growth``.

        A criterion registered with ``exact=False`` may prune another count; growth then grows
        the number actually pruned, as the paper's code does (``num_remove = nnz_before -
        nnz_after``), so pruned == grown still holds and layer densities stay fixed.
        Newly activated weights are zero; with ``reset_momentum`` their momentum is zeroed too.
        A position pruned and grown back in the same update keeps its value and momentum (as in
        RigL and the paper's code). Layers with no inactive position left to grow into (density
        1) are skipped: their topology cannot change.
        """
        updates: list[LayerUpdate] = []
        for layer in self.layers:
            update = self.update_layer(
                layer,
                step=step,
                prune_fraction=prune_fraction,
                criterion=criterion,
                criterion_params=criterion_params,
                growth=growth,
                growth_params=growth_params,
                momentum=momentum,
                reset_momentum=reset_momentum,
            )
            if update is not None:
                updates.append(update)
        return TopologyUpdate(step=step, prune_fraction=prune_fraction, layers=updates)

    @torch.no_grad()
    def update_layer(
        self,
        layer: SparseLayer,
        *,
        step: int,
        prune_fraction: float,
        criterion: CriterionInfo,
        criterion_params: Mapping[str, Any],
        growth: GrowthInfo,
        growth_params: Mapping[str, Any],
        momentum: MomentumLookup | None = None,
        reset_momentum: bool = True,
    ) -> LayerUpdate | None:
        """Prune and grow one layer (see :meth:`update`); None when its topology cannot change
        or ζ prunes nothing."""
        active = layer.target
        if active == 0 or active == layer.numel:
            return None
        n = min(math.ceil(prune_fraction * active), active)
        if n == 0:
            return None
        momentum_buffer = momentum(layer.weight) if momentum is not None else None
        ctx = self.context(layer, layer.mask, criterion, momentum_buffer, step)
        pruned = prune_positions(criterion, criterion_params, ctx, n)
        requested = n
        if not criterion.exact:
            n = int(torch.count_nonzero(pruned))
        after_prune = layer.mask & ~pruned
        grow_ctx = self.context(layer, after_prune, growth, momentum_buffer, step)
        grown = grow_positions(growth, growth_params, grow_ctx, n)
        new_mask = after_prune | grown
        if reset_momentum and momentum_buffer is not None:
            momentum_buffer.masked_fill_(grown & ~layer.mask, 0.0)
        layer.mask.copy_(new_mask)
        # Through a uint8 view: the same 0/1 values, but torch's CPU bool -> float copy is
        # several times slower than its uint8 -> float one.
        layer.float_mask.copy_(new_mask.view(torch.uint8))
        # Removed weights become zero; new ones already are (inactive weights are zero).
        layer.weight.mul_(layer.float_mask)
        n_grown = int(torch.count_nonzero(grown))
        if not growth.exact:
            layer.target = active - n + n_grown
        return LayerUpdate(
            name=layer.name,
            pruned=pruned,
            grown=grown,
            n_pruned=n,
            n_grown=n_grown,
            n_regrown=int(torch.count_nonzero(pruned & grown)),
            active=layer.target,
            n_requested=requested,
        )

    # --- invariants ----------------------------------------------------------------------

    @torch.no_grad()
    def violations(self, *, exact_growth: bool = True) -> list[str]:
        """Broken invariants, as messages: per-layer active count == target, inactive weights
        exactly zero. (pruned == grown is checked per update by :func:`update_violations`.)
        """
        problems = []
        for layer in self.layers:
            count = int(torch.count_nonzero(layer.mask))
            if exact_growth and count != layer.target:
                problems.append(f"{layer.name}: {count} active weights, target {layer.target}")
            # Non-zero and inactive; cheaper than zeroing a copy of the weight at the active
            # positions (masked_fill) and counting what is left.
            stray = int(torch.count_nonzero((layer.weight.detach() != 0) & ~layer.mask))
            if stray:
                problems.append(f"{layer.name}: {stray} inactive weights are not zero")
        return problems


def update_violations(update: TopologyUpdate) -> list[str]:
    """pruned == grown for every layer of an update with exact growth."""
    return [
        f"{u.name}: pruned {u.n_pruned} but grew {u.n_grown} at step {update.step}"
        for u in update.layers
        if u.n_pruned != u.n_grown
    ]
