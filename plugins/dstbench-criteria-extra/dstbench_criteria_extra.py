"""Pruning criteria from the paper's code that its main experiments did not study.

"Fantastic Weights and How to Find Them" (Nowak et al., NeurIPS 2023) ships more criteria in
``sparselearning/pruners.py`` than it compares. This plugin makes three of them usable by name:

* ``taylor``: Taylor first order, (w·g)² (``taylor_FO``);
* ``gradstep``: |w − γ·g|, the magnitude after a gradient step of size γ
  (``grad_step_pruning_fixed``; γ = 1 as in the code, whose ``GradStepPruner`` never passes
  its own γ on);
* ``set_paper``: SET exactly as the public code runs it (``magnitude_and_negativity_prune``),
  bug included: it keeps only the k − 1 most negative weights, so an update removes about
  half of a layer whatever ζ is. It prunes an inexact count (``exact=False``); the engine
  regrows the number actually pruned, as the paper's code does.

Like every criterion, ``taylor`` and ``gradstep`` return one score per weight and the lowest
scores among the active weights are pruned (ties at random with the run's generator).
"""

from __future__ import annotations

import math

import torch

from dstbench import CriterionContext, hookimpl
from dstbench.registry import Register

__version__ = "0.1.0"


def taylor(ctx: CriterionContext) -> torch.Tensor:
    """Taylor first order (w·g)²: the squared first-order change of the loss on removal."""
    assert ctx.grad is not None  # registered with needs_grad=True
    return (ctx.weight * ctx.grad).square_()


def gradstep(ctx: CriterionContext, gamma: float = 1.0) -> torch.Tensor:
    """GradStep |w − γ·g|: the magnitude a weight would have after a gradient step of size γ."""
    assert ctx.grad is not None
    return (ctx.weight - gamma * ctx.grad).abs_()


def _kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """``sorted(values)[min(k, len) - 1]``, Python indexing included, as the paper's code does
    (so k = 0 picks the largest value).
    """
    ordered = torch.sort(values).values
    return ordered[min(k, ordered.numel()) - 1]


def set_paper(ctx: CriterionContext, n: int) -> torch.Tensor:
    """SET as the paper's public code runs it: ⌈n/2⌉ smallest positives, and every negative
    weight except the ⌈n/2⌉ − 1 most negative ones (plus any active weight exactly 0).
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
    """Register taylor, gradstep and set_paper."""
    register("taylor", taylor, needs_grad=True)
    register("gradstep", gradstep, needs_grad=True)
    register(
        "set_paper",
        set_paper,
        selects=True,
        exact=False,
        description="SET as the paper's code runs it: keeps only the k-1 most negative weights "
        "(k = ceil(n/2)), so ~half a layer is pruned whatever ζ; inexact count",
    )
