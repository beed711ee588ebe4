"""The paper's pruning criteria, as a plugin.

Every score-form criterion returns a score per weight; the harness prunes the ``n`` *lowest*
scores among the layer's active weights (higher score = keep), ties broken at random with the
run's generator. Formulas and epsilons follow the reference code of "Fantastic Weights and How
to Find Them" (Nowak et al., NeurIPS 2023), ``sparselearning/pruners.py``: the "+1" and epsilon
terms are kept because they decide ties (e.g. SNIP scores every weight with a zero gradient
exactly 1e-5, the minimum, so those go first). The reference code multiplies scores by the mask
so inactive weights score lowest; here inactive positions are never candidates, which is the
same selection.
"""

from __future__ import annotations

import math

import torch

from dstbench.hookspecs import hookimpl
from dstbench.registry import Register
from dstbench.sparse.ops import CriterionContext
from dstbench.sparse.selection import select


def magnitude(ctx: CriterionContext) -> torch.Tensor:
    """|w|: the smallest-magnitude active weights are pruned."""
    return ctx.weight.abs()


def mest(ctx: CriterionContext, lam: float = 1.0) -> torch.Tensor:
    """|w| + λ|g| (MEST; λ = 1 in the paper's main experiments)."""
    assert ctx.grad is not None
    return ctx.weight.abs().add_(ctx.grad.abs(), alpha=lam)


def snip(ctx: CriterionContext) -> torch.Tensor:
    """|w·g| + 1e-5 (SNIP; the epsilon of the paper's code)."""
    assert ctx.grad is not None
    return (ctx.weight * ctx.grad).abs_().add_(1e-5)


def rsensitivity(ctx: CriterionContext) -> torch.Tensor:
    """|w| / (|g| + 1e-8) + 1 (reciprocal sensitivity)."""
    assert ctx.grad is not None
    return ctx.weight.abs().div_(ctx.grad.abs().add_(1e-8)).add_(1.0)


def sensitivity(ctx: CriterionContext) -> torch.Tensor:
    """|g| / (|w| + 1e-8) + 1 (sensitivity; the paper's appendix)."""
    assert ctx.grad is not None
    return ctx.grad.abs().div_(ctx.weight.abs().add_(1e-8)).add_(1.0)


def random(ctx: CriterionContext) -> torch.Tensor:
    """Uniformly random: all scores tie, so the seeded tie-breaking picks the weights."""
    return torch.zeros_like(ctx.weight)


def set_criterion(ctx: CriterionContext, n: int) -> torch.Tensor:
    """SET (Mocanu et al. 2018), correctly: the ⌈n/2⌉ smallest non-negative weights and the
    ⌊n/2⌋ negative weights closest to zero; when one sign runs short the rest comes from the
    other. (The paper's public code removes nearly every negative weight instead; that variant
    ships as the ``set_paper`` example plugin.)
    """
    w = ctx.weight
    non_negative = ctx.mask & (w >= 0)
    negative = ctx.mask & (w < 0)
    n_nonneg_available = int(non_negative.sum())
    n_neg_available = int(negative.sum())
    n_nonneg = min(math.ceil(n / 2), n_nonneg_available)
    n_neg = min(n - n_nonneg, n_neg_available)
    n_nonneg = n - n_neg  # shortfall of negatives is taken from the non-negative side
    magnitude_scores = w.abs()
    chosen = select(
        magnitude_scores, non_negative, n_nonneg, largest=False, generator=ctx.generator
    )
    chosen |= select(magnitude_scores, negative, n_neg, largest=False, generator=ctx.generator)
    return chosen


@hookimpl
def dstbench_register_criteria(register: Register) -> None:
    """Register the paper's criteria."""
    register("magnitude", magnitude)
    register(
        "set",
        set_criterion,
        selects=True,
        description="SET: the n/2 smallest positive and n/2 negative weights closest to zero",
    )
    register("mest", mest, needs_grad=True)
    register("snip", snip, needs_grad=True)
    register("rsensitivity", rsensitivity, needs_grad=True)
    register("sensitivity", sensitivity, needs_grad=True)
    register("random", random)
