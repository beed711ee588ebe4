"""Pruning criteria from the paper's code that its main experiments did not study.

"Fantastic Weights and How to Find Them" (Nowak et al., NeurIPS 2023) ships more criteria in
``sparselearning/pruners.py`` than it compares. This plugin makes two of them usable by name:

* ``taylor``: Taylor first order, (w·g)² (``taylor_FO``);
* ``gradstep``: |w − γ·g|, the magnitude after a gradient step of size γ
  (``grad_step_pruning_fixed``; γ = 1 as in the code, whose ``GradStepPruner`` never passes
  its own γ on).

(The paper code's SET, ``set_paper``, shipped here up to version 0.1.0; it is a built-in
criterion of dstbench now, swapped in for ``set`` by ``fidelity = "paper"``.)

Like every criterion, ``taylor`` and ``gradstep`` return one score per weight and the lowest
scores among the active weights are pruned (ties at random with the run's generator).
"""

from __future__ import annotations

import torch

from dstbench import CriterionContext, hookimpl
from dstbench.registry import Register

__version__ = "0.2.0"


def taylor(ctx: CriterionContext) -> torch.Tensor:
    """Taylor first order (w·g)²: the squared first-order change of the loss on removal."""
    assert ctx.grad is not None  # registered with needs_grad=True
    return (ctx.weight * ctx.grad).square_()


def gradstep(ctx: CriterionContext, gamma: float = 1.0) -> torch.Tensor:
    """GradStep |w − γ·g|: the magnitude a weight would have after a gradient step of size γ."""
    assert ctx.grad is not None
    return (ctx.weight - gamma * ctx.grad).abs_()


@hookimpl
def dstbench_register_criteria(register: Register) -> None:
    """Register taylor and gradstep."""
    register("taylor", taylor, needs_grad=True)
    register("gradstep", gradstep, needs_grad=True)
