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

from dstbench.contracts.components import Register
from dstbench.contracts.layers import CriterionContext
from dstbench.hookspecs import hookimpl
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
    is ``set_paper``, which ``fidelity = "paper"`` swaps in for ``set``.)
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


def _kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """``sorted(values)[min(k, len) - 1]``, Python indexing included, as the paper's code does
    (so k = 0 picks the largest value).
    """
    ordered = torch.sort(values).values
    return ordered[min(k, ordered.numel()) - 1]


def set_paper(ctx: CriterionContext, n: int) -> torch.Tensor:
    """SET as the paper's public code runs it (``magnitude_and_negativity_prune``): the
    ⌈n/2⌉ smallest positives, and every negative weight except the ⌈n/2⌉ − 1 most negative
    ones (plus any active weight exactly 0), so an update removes about half of a layer
    whatever ζ is. The count is inexact; growth regrows the number actually pruned.
    """
    w, active = ctx.weight, ctx.mask
    k = math.ceil(n / 2.0)
    positive = active & (w > 0)
    negative = active & (w < 0)
    keep = torch.zeros_like(active)
    if bool(positive.any()):
        # Positives above the k-th smallest positive stay: the k smallest (and ties) go.
        keep |= positive & (w > _kth_smallest(w[positive], k))
    if bool(negative.any()):
        # The bug: negatives are sorted ascending (most negative first) and only those
        # *below* the k-th most negative stay, so all the others are removed.
        keep |= negative & (w < _kth_smallest(w[negative], k))
    return active & ~keep


@hookimpl
def dstbench_register_criteria(register: Register) -> None:
    """Register the paper's criteria."""
    # Every criterion here scores a weight from its own weight and gradient: the sparse
    # engine may call them on the active weights alone (elementwise=True).
    register("magnitude", magnitude, elementwise=True)
    register(
        "set",
        set_criterion,
        selects=True,
        elementwise=True,
        description="SET: the n/2 smallest positive and n/2 negative weights closest to zero",
    )
    register(
        "set_paper",
        set_paper,
        selects=True,
        exact=False,
        description="SET as the paper's code runs it: keeps only the k-1 most negative weights "
        "(k = ceil(n/2)), so ~half a layer is pruned whatever ζ; inexact count",
    )
    register("mest", mest, needs_grad=True, elementwise=True)
    register("snip", snip, needs_grad=True, elementwise=True)
    register("rsensitivity", rsensitivity, needs_grad=True, elementwise=True)
    register("sensitivity", sensitivity, needs_grad=True, elementwise=True)
    register("random", random, elementwise=True)
