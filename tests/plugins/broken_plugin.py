"""A deliberately broken plugin: every component breaks one contract of the conformance kit.

``dstbench check-plugin tests/plugins/broken_plugin.py`` must fail on each of them with a
message that says what is wrong and how to fix it (tests/test_conformance.py checks the text).
"""

from __future__ import annotations

import torch
from torch import nn

from dstbench import DatasetParts, TensorSplit, hookimpl


def flat_scores(ctx):
    """Scores flattened to 1-D: the wrong shape."""
    return ctx.weight.abs().flatten()


def ratio_no_epsilon(ctx):
    """|g| / |w| with no epsilon: inf (or NaN) where a weight or gradient is exactly zero."""
    return ctx.grad.abs() / ctx.weight.abs()


def undeclared_grad(ctx):
    """Reads the gradient without needs_grad=True."""
    return ctx.grad.abs()


def linear_only(ctx):
    """Unpacks a 2-D shape, so Conv weights break it."""
    rows, cols = ctx.weight.shape
    return ctx.weight.abs() + torch.arange(cols, device=ctx.weight.device) / (rows * cols * 1e6)


def in_place(ctx):
    """Modifies the engine's weight tensor."""
    return ctx.weight.abs_()


def global_rng(ctx):
    """Random scores from torch's global generator instead of ctx.generator."""
    return torch.rand(ctx.weight.shape)


def picks_inactive(ctx, n):
    """Selects among the inactive positions."""
    chosen = torch.zeros_like(ctx.mask)
    chosen.view(-1)[(~ctx.mask).view(-1).nonzero().squeeze(1)[:n]] = True
    return chosen


def one_short(ctx, n):
    """Selects n - 1 active positions."""
    chosen = torch.zeros_like(ctx.mask)
    chosen.view(-1)[ctx.mask.view(-1).nonzero().squeeze(1)[: max(n - 1, 0)]] = True
    return chosen


def grows_active(ctx, n):
    """Activates already active positions."""
    return ctx.mask.clone()


def too_eager(step, total_steps, initial):
    """ζ above 1."""
    return 1.5 * initial + 0.5


def ignores_density(shapes, density):
    """Every layer at 0.5 whatever the density."""
    return {name: 0.5 for name in shapes}


class NoWeights(nn.Module):
    """Nothing to sparsify, and the output has the wrong width."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.flatten(1) * self.scale


def no_weights(input_shape, num_classes):
    """A model with no Linear or Conv layer."""
    return NoWeights()


def labels_out_of_range(ctx):
    """Labels 1..10 for 10 classes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 4, 4, generator=g)
    y = torch.arange(64) % 10 + 1
    return DatasetParts(
        train=TensorSplit(x, y), test=TensorSplit(x, y), input_shape=(1, 4, 4), num_classes=10
    )


@hookimpl
def dstbench_register_criteria(register):
    register("flat_scores", flat_scores)
    register("ratio_no_epsilon", ratio_no_epsilon, needs_grad=True)
    register("undeclared_grad", undeclared_grad)
    register("linear_only", linear_only)
    register("in_place", in_place)
    register("global_rng", global_rng)
    register("picks_inactive", picks_inactive, selects=True)
    register("one_short", one_short, selects=True)
    register("no_description", lambda ctx: ctx.weight.abs())


@hookimpl
def dstbench_register_growth(register):
    register("grows_active", grows_active, selects=True)


@hookimpl
def dstbench_register_schedules(register):
    register("too_eager", too_eager)


@hookimpl
def dstbench_register_distributions(register):
    register("ignores_density", ignores_density)


@hookimpl
def dstbench_register_models(register):
    register("no_weights", no_weights)


@hookimpl
def dstbench_register_datasets(register):
    register("labels_out_of_range", labels_out_of_range)
