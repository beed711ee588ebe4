"""The paper code's SET (``set_paper``), a built-in criterion: the protocol's numeric replica."""

from __future__ import annotations

import math

import pytest
import torch

import dstbench
from dstbench.builtin.criteria import set_paper
from dstbench.sparse.masker import Masker, update_violations


def _replica_layer() -> tuple[torch.Tensor, torch.Tensor]:
    """The protocol's numeric replica: 1,000 active weights of which 521 negative, all values
    distinct, shuffled, in a 40×40 layer with 600 inactive (zero) positions.
    """
    g = torch.Generator().manual_seed(0)
    values = torch.cat([-torch.arange(1, 522) / 1000.0, torch.arange(1, 480) / 1000.0])
    positions = torch.randperm(1600, generator=g)[:1000]
    weight = torch.zeros(1600)
    weight[positions] = values[torch.randperm(1000, generator=g)]
    mask = torch.zeros(1600, dtype=torch.bool)
    mask[positions] = True
    return weight.view(40, 40), mask.view(40, 40)


def test_set_paper_reproduces_the_protocol_replica():
    weight, mask = _replica_layer()
    n = math.ceil(0.3 * int(mask.sum()))
    assert (int(mask.sum()), int((weight < 0).sum()), n) == (1000, 521, 300)
    ctx = dstbench.CriterionContext(weight=weight, mask=mask)
    pruned = set_paper(ctx, n)
    assert int(pruned.sum()) == 522
    assert int((pruned & (weight > 0)).sum()) == 150
    assert int((pruned & (weight < 0)).sum()) == 372
    kept_negative = mask & (weight < 0) & ~pruned
    assert int(kept_negative.sum()) == 149
    # ... and they are the 149 most negative weights: -0.521 .. -0.373.
    assert weight[kept_negative].max().item() == pytest.approx(-0.373)
    # The smallest positives go: 0.001 .. 0.150.
    assert weight[pruned & (weight > 0)].max().item() == pytest.approx(0.150)


def test_the_corrected_set_removes_the_intended_300(registry):
    weight, mask = _replica_layer()
    kept = dstbench.prune(registry.criteria["set"], weight, mask, 300)
    removed = mask & ~kept
    assert int(removed.sum()) == 300
    assert int((removed & (weight > 0)).sum()) == 150
    assert int((removed & (weight < 0)).sum()) == 150


def test_set_paper_update_regrows_the_522_it_pruned(registry):
    weight, mask = _replica_layer()
    param = torch.nn.Parameter(weight.clone())
    masker = Masker([("w", param)], {"w": 0.625}, generator=torch.Generator().manual_seed(1))
    layer = masker.layers[0]
    layer.mask.copy_(mask)
    layer.float_mask.copy_(mask)
    with torch.no_grad():
        param.copy_(weight)  # the masker zeroed weights outside its own initial mask
    param.grad = torch.randn(40, 40, generator=torch.Generator().manual_seed(2))
    assert layer.target == 1000
    update = masker.update(
        step=800,
        prune_fraction=0.3,
        criterion=registry.criteria["set_paper"],
        criterion_params={},
        growth=registry.growth["gradient"],
        growth_params={},
    )
    assert update.summary() | {"regrown": None} == {
        "step": 800,
        "prune_fraction": 0.3,
        "requested": 300,
        "pruned": 522,
        "grown": 522,
        "regrown": None,
    }
    assert update_violations(update) == [] and masker.violations() == []
    assert int(layer.mask.sum()) == 1000


def test_set_paper_removes_active_zero_weights_and_handles_one_sign():
    weight = torch.tensor([0.0, 0.2, 0.3, 0.1])  # no negatives; one active zero
    mask = torch.tensor([True, True, True, True])
    pruned = set_paper(dstbench.CriterionContext(weight=weight, mask=mask), 2)
    # k = 1: the smallest positive (0.1) goes, and the zero weight, which no rule keeps.
    assert pruned.tolist() == [True, False, False, True]
