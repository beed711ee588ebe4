"""Layers that criteria and growth methods are checked on: a Linear and a Conv weight.

They look like the engine's layers mid-training: inactive weights exactly zero, a few active
weights exactly zero too (as just-grown weights are), a dense gradient with one dead output
unit (all zeros, as behind a dead ReLU) and a momentum buffer. Everything is drawn from a
seeded generator, so the same seed gives the same layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dstbench.contracts.layers import LayerContext

#: The shapes every criterion and growth method must handle: (out, in) for Linear and
#: (out, in, kh, kw) for Conv2d.
LAYER_SHAPES: dict[str, tuple[int, ...]] = {
    "Linear": (16, 24),
    "Conv2d": (8, 4, 3, 3),
}


@dataclass(frozen=True)
class LayerCase:
    """One layer to check on: a label (``"Linear (16, 24)"``) and its context."""

    label: str
    ctx: LayerContext

    @property
    def active(self) -> int:
        """Number of active positions."""
        return int(self.ctx.mask.sum())

    @property
    def inactive(self) -> int:
        """Number of inactive positions."""
        return self.ctx.mask.numel() - self.active


def make_layer(
    shape: Sequence[int] = LAYER_SHAPES["Linear"],
    *,
    density: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    grad: bool = True,
    momentum: bool = True,
    layer: str = "layer.weight",
    step: int = 100,
) -> LayerContext:
    """A :class:`~dstbench.CriterionContext` for a layer of ``shape`` at ``density``.

    ``generator`` is a fresh CPU generator seeded with ``seed``, like the engine's topology
    generator (which stays on the CPU even when training on a GPU).
    """
    g = torch.Generator().manual_seed(seed)
    numel = 1
    for size in shape:
        numel *= int(size)
    mask = torch.zeros(numel, dtype=torch.bool)
    active = max(1, round(density * numel))
    order = torch.randperm(numel, generator=g)
    mask[order[:active]] = True
    weight = torch.randn(numel, generator=g) * 0.1
    # A few active weights are exactly zero, as weights grown at the last update are.
    weight[order[: min(3, active - 1)]] = 0.0
    weight = weight * mask
    mask = mask.view(*shape)
    weight = weight.view(*shape)
    dense_grad = torch.randn(tuple(shape), generator=g) * 0.01
    dense_grad[0].zero_()  # a dead output unit: its whole gradient is zero
    buffer = torch.randn(tuple(shape), generator=g) * 0.01
    return LayerContext(
        weight=weight.to(device),
        mask=mask.to(device),
        grad=dense_grad.to(device) if grad else None,
        momentum=buffer.to(device) if momentum else None,
        layer=layer,
        step=step,
        generator=torch.Generator().manual_seed(seed + 1),
    )


def layer_cases(
    *, device: str | torch.device = "cpu", seed: int = 0, density: float = 0.5
) -> list[LayerCase]:
    """One case per entry of :data:`LAYER_SHAPES`."""
    return [
        LayerCase(
            f"{kind} weight {shape}",
            make_layer(
                shape, density=density, seed=seed + i, device=device, layer=f"{kind}.weight"
            ),
        )
        for i, (kind, shape) in enumerate(LAYER_SHAPES.items())
    ]
