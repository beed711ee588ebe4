"""Growth methods, as a plugin.

Score-form methods return a score per position; the harness activates the ``n`` *highest*
scores among the inactive positions (those left after this update's pruning, so a weight just
pruned may come back, as in RigL and the paper's code), ties broken at random.
"""

from __future__ import annotations

import torch

from dstbench.contracts.components import Register
from dstbench.contracts.layers import GrowthContext
from dstbench.hookspecs import hookimpl


def random_growth(ctx: GrowthContext) -> torch.Tensor:
    """Exactly n positions, uniformly among the inactive ones (all scores tie)."""
    return torch.zeros_like(ctx.weight)


def gradient_growth(ctx: GrowthContext) -> torch.Tensor:
    """RigL: the n inactive positions with the largest |g| of the current batch."""
    assert ctx.grad is not None
    return ctx.grad.abs()


def momentum_growth(ctx: GrowthContext) -> torch.Tensor:
    """SNFS: the n inactive positions with the largest |momentum| (|g| before the first step)."""
    source = ctx.momentum if ctx.momentum is not None else ctx.grad
    assert source is not None
    return source.abs()


def random_bernoulli_growth(ctx: GrowthContext, n: int) -> torch.Tensor:
    """The paper code's random growth: each inactive position is activated independently with
    probability n / inactive, so the count is right only in expectation and densities drift.
    """
    inactive = ~ctx.mask
    available = int(inactive.sum())
    if available == 0 or n == 0:
        return torch.zeros_like(ctx.mask)
    draws = torch.rand(ctx.mask.shape, generator=ctx.generator).to(ctx.mask.device)
    return inactive & (draws < n / available)


@hookimpl
def dstbench_register_growth(register: Register) -> None:
    """Register the growth methods."""
    register("random", random_growth, elementwise=True)
    register("gradient", gradient_growth, needs_grad=True, elementwise=True)
    register("momentum", momentum_growth, needs_grad=True, needs_momentum=True)
    register(
        "random_bernoulli",
        random_bernoulli_growth,
        selects=True,
        exact=False,
        description="paper code's random growth: Bernoulli(n/inactive) per position, inexact count",
    )
