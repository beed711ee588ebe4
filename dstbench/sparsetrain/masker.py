"""The sparse engine's masks: Linear layers held as values and positions
(:class:`~dstbench.sparsetrain.layer.SparseLinear`), other sparse layers (convolutions)
masked-dense as in the single engine, and the topology update of both.

The update makes the same choices as :meth:`dstbench.sparse.masker.Masker.update`, in the
same layer order and with the same draws from the run's topology generator, so a run's masks
match the single engine's up to float rounding of the scores:

* a criterion registered ``elementwise`` is called on the active values alone (1-D tensors,
  an all-true mask): positions are kept in row-major order, so ties are broken by the same
  random keys as on the dense tensor;
* a growth method that is ``elementwise`` and needs neither gradient nor momentum grows
  uniformly at random: its draw is replayed without a dense tensor (the same ``float64``
  keys, one per inactive position) while the layer has at most
  :data:`EXACT_DRAW_POSITIONS` inactive positions, and sampled by rejection beyond (the same
  distribution, another random stream);
* every other criterion or growth method sees the dense tensors, materialised for the update
  (weight, mask, and the step's dense gradient ``dY^T X``: one dense product per update).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from dstbench.contracts.layers import LayerContext, LayerUpdate
from dstbench.registry import CriterionInfo, GrowthInfo
from dstbench.sparse.masker import Masker, MomentumLookup, SparseLayer
from dstbench.sparse.ops import grow_positions, prune_positions
from dstbench.sparsetrain.layer import SparseLinear

#: Up to this many inactive positions, uniform random growth replays the single engine's
#: draw exactly (one float64 key per inactive position: 128 MiB at the limit).
EXACT_DRAW_POSITIONS = 1 << 24


@dataclass
class CsrLayer:
    """A Linear weight the sparse engine holds as values and positions."""

    name: str
    module: SparseLinear
    #: Active count the layer holds at every update.
    target: int

    @property
    def numel(self) -> int:
        """Positions of the dense weight."""
        return self.module.numel

    @property
    def mask(self) -> torch.Tensor:
        """Bool mask of the active positions (materialised: for observers, not the engine)."""
        return self.module.dense_mask()

    @property
    def weight(self) -> torch.Tensor:
        """The dense weight (materialised: for observers, not the engine)."""
        return self.module.dense_weight()

    @property
    def active(self) -> int:
        """Stored weights."""
        return self.module.indices.numel()


AnyLayer = SparseLayer | CsrLayer


def uniform_growth(
    kept: torch.Tensor, numel: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` sorted positions drawn uniformly among the ``numel`` positions not in ``kept``
    (sorted). Replays :func:`dstbench.sparse.selection.select` on all-equal scores (one
    float64 key per candidate, the ``n`` smallest win) when the candidates are few enough,
    so the single engine grows the same positions."""
    available = numel - kept.numel()
    device = kept.device
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    if n == available:
        everything = torch.ones(numel, dtype=torch.bool, device=device)
        everything[kept] = False
        return everything.nonzero().squeeze(1)
    if available <= EXACT_DRAW_POSITIONS:
        keys = torch.rand(available, generator=generator, dtype=torch.float64)
        ranks = torch.topk(keys, n, largest=False, sorted=False).indices.to(device)
        # The r-th inactive position is r plus the number of kept positions before it; the
        # kept position kept[i] has kept[i] - i inactive positions before it.
        before = kept - torch.arange(kept.numel(), device=device)
        return torch.sort(ranks + torch.searchsorted(before, ranks, right=True)).values
    return _rejection_sample(kept, numel, n, generator)


def uniform_positions(numel: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` sorted positions of ``numel``, uniformly without replacement (the initial
    positions of a layer built sparse)."""
    return uniform_growth(torch.empty(0, dtype=torch.long), numel, count, generator)


def _rejection_sample(
    kept: torch.Tensor, numel: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    """Uniform ``n``-subset of the positions not in ``kept``, without touching the others:
    uniform draws, minus duplicates and kept positions, until ``n`` remain; then a uniform
    ``n``-subset of those (a uniform subset of a uniform subset is uniform)."""
    device = kept.device
    found = torch.empty(0, dtype=torch.long)
    kept_cpu = kept.cpu()
    while found.numel() < n:
        draw = torch.randint(0, numel, (n + n // 8 + 64,), generator=generator)
        place = torch.searchsorted(kept_cpu, draw).clamp_(max=max(kept_cpu.numel() - 1, 0))
        fresh = draw if kept_cpu.numel() == 0 else draw[kept_cpu[place] != draw]
        found = torch.unique(torch.cat([found, fresh]))
    chosen = found[torch.randperm(found.numel(), generator=generator)[:n]]
    return torch.sort(chosen).values.to(device)


class SparseMasker:
    """A run's sparse layers: CSR Linear layers and masked-dense others, in model order."""

    def __init__(self, dense: Masker, layers: list[AnyLayer]) -> None:
        #: The masked-dense part (its generator is the run's topology stream).
        self.dense = dense
        self.generator = dense.generator
        self.layers = layers
        self.optimizer: torch.optim.Optimizer | None = None

    def bind(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer whose momentum follows the values when a layer's topology changes."""
        self.optimizer = optimizer

    # --- what the engine and the record read ---------------------------------------------

    @property
    def csr_layers(self) -> list[CsrLayer]:
        """The layers held as values and positions."""
        return [layer for layer in self.layers if isinstance(layer, CsrLayer)]

    def float_masks(self) -> dict[torch.Tensor, torch.Tensor]:
        """Masks of the masked-dense weights, for the optimizer."""
        return self.dense.float_masks()

    def total(self) -> int:
        """Total number of sparse positions."""
        return sum(layer.numel for layer in self.layers)

    def _active_of(self, layer: AnyLayer) -> int:
        if isinstance(layer, CsrLayer):
            return layer.active
        return int(torch.count_nonzero(layer.mask))

    def active(self) -> int:
        """Total number of active positions."""
        return sum(self._active_of(layer) for layer in self.layers)

    def density(self) -> float:
        """Achieved global density over the sparse layers."""
        total = self.total()
        return self.active() / total if total else 1.0

    def layer_densities(self) -> dict[str, float]:
        """Achieved density per layer."""
        return {layer.name: self._active_of(layer) / layer.numel for layer in self.layers}

    def topology(self) -> dict[str, torch.Tensor]:
        """Each layer's active positions: sorted positions of CSR layers, masks of others."""
        return {
            layer.name: layer.module.indices if isinstance(layer, CsrLayer) else layer.mask
            for layer in self.layers
        }

    @torch.no_grad()
    def restore_topology(self, saved: Mapping[str, torch.Tensor]) -> None:
        """Set the topology to ``saved`` (CSR layers take theirs from the model's state)."""
        for layer in self.layers:
            if isinstance(layer, CsrLayer):
                if not torch.equal(
                    layer.module.indices, saved[layer.name].to(layer.module.indices)
                ):
                    msg = f"{layer.name}: the saved positions differ from the model's"
                    raise ValueError(msg)
            else:
                layer.mask.copy_(saved[layer.name])
                layer.float_mask.copy_(layer.mask)

    # --- the update ----------------------------------------------------------------------

    # The loop over layers is the single engine's (same order, so the same random draws);
    # only the per-layer update differs.
    update = Masker.update

    @torch.no_grad()
    def update_layer(
        self,
        layer: AnyLayer,
        *,
        momentum: MomentumLookup | None = None,
        reset_momentum: bool = True,
        **options: Any,
    ) -> LayerUpdate | None:
        """One layer's update: a CSR layer's here, a masked-dense one's by the dense masks."""
        if isinstance(layer, CsrLayer):
            return self._update_csr(layer, **options)
        return self.dense.update_layer(
            layer, momentum=momentum, reset_momentum=reset_momentum, **options
        )

    def _dense_context(
        self, layer: CsrLayer, mask: torch.Tensor, info: CriterionInfo | GrowthInfo, step: int
    ) -> LayerContext:
        module = layer.module
        grad = module.dense_gradient() if info.needs_grad else None
        return LayerContext(
            weight=module.dense_weight(),
            mask=mask,
            grad=grad,
            layer=layer.name,
            step=step,
            generator=self.generator,
        )

    def _prune(
        self,
        layer: CsrLayer,
        criterion: CriterionInfo,
        params: Mapping[str, Any],
        n: int,
        step: int,
    ) -> torch.Tensor:
        """Bool over the stored values: those ``criterion`` prunes."""
        module = layer.module
        if criterion.elementwise:
            ctx = LayerContext(
                weight=module.values.detach(),
                mask=torch.ones(module.values.shape, dtype=torch.bool, device=module.values.device),
                grad=module.values.grad if criterion.needs_grad else None,
                layer=layer.name,
                step=step,
                generator=self.generator,
            )
            return prune_positions(criterion, params, ctx, n)
        ctx = self._dense_context(layer, module.dense_mask(), criterion, step)
        return prune_positions(criterion, params, ctx, n).reshape(-1)[module.indices]

    def _grow(
        self,
        layer: CsrLayer,
        kept: torch.Tensor,
        growth: GrowthInfo,
        params: Mapping[str, Any],
        n: int,
        step: int,
    ) -> torch.Tensor:
        """Sorted positions ``growth`` activates among those not in ``kept``."""
        module = layer.module
        uniform = (
            growth.elementwise
            and not growth.selects
            and not growth.needs_grad
            and not growth.needs_momentum
        )
        if uniform:
            return uniform_growth(kept, module.numel, n, self.generator)
        mask = torch.zeros(module.numel, dtype=torch.bool, device=kept.device)
        mask[kept] = True
        ctx = self._dense_context(layer, mask.view(module.shape), growth, step)
        return grow_positions(growth, params, ctx, n).reshape(-1).nonzero().squeeze(1)

    def _update_csr(
        self,
        layer: CsrLayer,
        *,
        step: int,
        prune_fraction: float,
        criterion: CriterionInfo,
        criterion_params: Mapping[str, Any],
        growth: GrowthInfo,
        growth_params: Mapping[str, Any],
    ) -> LayerUpdate | None:
        """One CSR layer's update; regrown positions keep value and momentum, new ones start
        at zero with zero momentum."""
        module = layer.module
        active = layer.target
        if active == 0 or active == layer.numel:
            return None
        n = min(math.ceil(prune_fraction * active), active)
        if n == 0:
            return None
        old = module.indices
        pruned = self._prune(layer, criterion, criterion_params, n, step)
        kept = old[~pruned]
        grown = self._grow(layer, kept, growth, growth_params, n, step)
        new = torch.sort(torch.cat([kept, grown])).values
        # Where each new position was stored before (regrown and kept ones carry over).
        place = torch.searchsorted(old, new).clamp_(max=max(old.numel() - 1, 0))
        carried = old[place] == new if old.numel() else torch.zeros_like(new, dtype=torch.bool)
        values = torch.where(carried, module.values.detach()[place], 0.0)
        buffer = self._momentum_of(module)
        new_buffer = torch.where(carried, buffer[place], 0.0) if buffer is not None else None
        pruned_positions = old[pruned]
        n_regrown = int(torch.count_nonzero(torch.isin(grown, pruned_positions)))
        module.set_structure(new, values)
        if new_buffer is not None:
            assert self.optimizer is not None
            self.optimizer.state[module.values]["momentum_buffer"] = new_buffer
        # The optimizer step that may follow (default order) reads the new positions'
        # gradient of this batch, as the single engine's dense gradient gives it.
        module.values.grad = module.values_gradient()
        return PositionsUpdate(
            shape=module.shape,
            pruned_positions=pruned_positions,
            grown_positions=grown,
            name=layer.name,
            n_pruned=int(pruned_positions.numel()),
            n_grown=int(grown.numel()),
            n_regrown=n_regrown,
            active=layer.target,
            n_requested=n,
        )

    def _momentum_of(self, module: SparseLinear) -> torch.Tensor | None:
        if self.optimizer is None:
            return None
        state = self.optimizer.state.get(module.values)
        return state.get("momentum_buffer") if state else None

    # --- invariants ----------------------------------------------------------------------

    @torch.no_grad()
    def violations(self, *, exact_growth: bool = True) -> list[str]:
        """Broken invariants: active count == target, positions unique, sorted and in range
        (inactive weights are absent by construction), and the masked-dense layers' own."""
        problems: list[str] = []
        for layer in self.layers:
            if not isinstance(layer, CsrLayer):
                continue
            indices = layer.module.indices
            count = indices.numel()
            if exact_growth and count != layer.target:
                problems.append(f"{layer.name}: {count} active weights, target {layer.target}")
            if layer.module.values.numel() != count:
                problems.append(
                    f"{layer.name}: {layer.module.values.numel()} values for {count} positions"
                )
            if count and (
                bool((indices[1:] <= indices[:-1]).any())
                or int(indices[0]) < 0
                or int(indices[-1]) >= layer.numel
            ):
                problems.append(f"{layer.name}: positions not unique, sorted and in range")
        if self.dense.layers:
            problems += self.dense.violations(exact_growth=exact_growth)
        return problems


def _mask_of(positions: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    mask = torch.zeros(shape[0] * shape[1], dtype=torch.bool, device=positions.device)
    mask[positions] = True
    return mask.view(shape)


class PositionsUpdate(LayerUpdate):
    """What an update did to a CSR layer: its ``pruned`` and ``grown`` masks are built from
    the positions when an observer first reads them (most read the counts only, and a layer
    too large to hold densely has masks too large to build)."""

    def __init__(
        self,
        *,
        shape: tuple[int, int],
        pruned_positions: torch.Tensor,
        grown_positions: torch.Tensor,
        **counts: Any,
    ) -> None:
        self._shape = shape
        self._positions = {"pruned": pruned_positions, "grown": grown_positions}
        self._masks: dict[str, torch.Tensor] = {}
        super().__init__(pruned=None, grown=None, **counts)  # type: ignore[arg-type]

    def _mask(self, which: str) -> torch.Tensor:
        if which not in self._masks:
            self._masks[which] = _mask_of(self._positions[which], self._shape)
        return self._masks[which]

    @property
    def pruned(self) -> torch.Tensor:
        """Bool mask of the positions pruned (built on first read)."""
        return self._mask("pruned")

    @pruned.setter
    def pruned(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._masks["pruned"] = value

    @property
    def grown(self) -> torch.Tensor:
        """Bool mask of the positions grown (built on first read)."""
        return self._mask("grown")

    @grown.setter
    def grown(self, value: torch.Tensor | None) -> None:
        if value is not None:
            self._masks["grown"] = value
