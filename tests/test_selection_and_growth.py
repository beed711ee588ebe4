"""Exact top-n selection with seeded tie-breaking, and every growth method."""

from __future__ import annotations

import pytest
import torch

import dstbench
from dstbench.errors import CriterionError
from dstbench.sparse.selection import select


def test_select_chooses_exactly_n_of_the_candidates_by_score():
    scores = torch.tensor([5.0, 1.0, 3.0, 2.0, 4.0])
    candidates = torch.tensor([True, True, False, True, True])
    low = select(scores, candidates, 2, largest=False, generator=torch.Generator())
    high = select(scores, candidates, 2, largest=True, generator=torch.Generator())
    assert low.tolist() == [False, True, False, True, False]
    assert high.tolist() == [True, False, False, False, True]


def test_ties_are_broken_uniformly_and_reproducibly():
    scores = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    candidates = torch.ones(6, dtype=torch.bool)
    picks = torch.zeros(6)
    for seed in range(800):
        chosen = select(
            scores, candidates, 3, largest=False, generator=torch.Generator().manual_seed(seed)
        )
        assert chosen[0] and not chosen[5]  # the strict minimum always, the maximum never
        picks += chosen.float()
    # two of the four tied positions 1..4 each time: 400 expected per position
    assert picks[1:5].min() > 340 and picks[1:5].max() < 460
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(
        select(scores, candidates, 2, largest=False, generator=g1),
        select(scores, candidates, 2, largest=False, generator=g2),
    )


def test_select_rejects_nan_scores_and_too_many():
    candidates = torch.ones(3, dtype=torch.bool)
    with pytest.raises(CriterionError, match="NaN"):
        select(torch.tensor([1.0, float("nan"), 0.0]), candidates, 1, largest=False, generator=None)
    with pytest.raises(CriterionError, match="cannot choose 4"):
        select(torch.zeros(3), candidates, 4, largest=False, generator=None)


def test_random_growth_activates_exactly_n_uniformly_among_inactive():
    mask = torch.tensor([True, False, False, True, False, False, False, False])
    counts = torch.zeros(8)
    for seed in range(600):
        new = dstbench.grow("random", mask, 3, generator=torch.Generator().manual_seed(seed))
        assert int(new.sum()) == 5 and bool(new[mask].all())
        counts += (new & ~mask).float()
    assert counts[[0, 3]].sum() == 0
    # 3 of 6 inactive: 300 expected per position
    inactive = counts[~mask]
    assert inactive.min() > 240 and inactive.max() < 360


def test_gradient_growth_takes_largest_gradient_magnitudes_among_inactive():
    mask = torch.tensor([True, False, False, True, False, False])
    grad = torch.tensor([9.0, -0.5, 3.0, 8.0, -4.0, 0.1])
    new = dstbench.grow("gradient", mask, 2, grad=grad)
    assert (new & ~mask).nonzero().flatten().tolist() == [2, 4]


def test_momentum_growth_uses_the_momentum_buffer_else_the_gradient():
    mask = torch.tensor([True, False, False, False])
    grad = torch.tensor([0.0, 5.0, 0.1, 0.2])
    momentum = torch.tensor([0.0, 0.1, 0.2, 7.0])
    with_momentum = dstbench.grow("momentum", mask, 1, grad=grad, momentum=momentum)
    without = dstbench.grow("momentum", mask, 1, grad=grad)
    assert with_momentum.tolist() == [True, False, False, True]
    assert without.tolist() == [True, True, False, False]


def test_bernoulli_growth_is_right_only_in_expectation():
    mask = torch.zeros(1000, dtype=torch.bool)
    mask[:500] = True
    counts = []
    for seed in range(40):
        new = dstbench.grow(
            "random_bernoulli", mask, 100, generator=torch.Generator().manual_seed(seed)
        )
        assert bool(new[:500].all())
        counts.append(int(new.sum()) - 500)
    assert len(set(counts)) > 1  # not exact
    assert 90 < sum(counts) / len(counts) < 110  # but right on average


def test_grow_refuses_more_than_the_inactive_positions():
    with pytest.raises(CriterionError, match="only 1 available"):
        dstbench.grow("random", torch.tensor([True, False]), 2)


@pytest.mark.parametrize("fraction", [0.1, 0.9])  # few candidates: gathered; many: masked
@pytest.mark.parametrize("largest", [False, True])
def test_both_selection_paths_choose_the_same_best_positions(fraction, largest):
    generator = torch.Generator().manual_seed(3)
    scores = torch.randn(5000, generator=generator)
    candidates = torch.rand(5000, generator=generator) < fraction
    n = int(candidates.sum()) // 3
    chosen = select(scores, candidates, n, largest=largest, generator=generator)
    ranked = scores.masked_fill(~candidates, float("-inf") if largest else float("inf"))
    expected = torch.topk(ranked, n, largest=largest).indices
    assert sorted(chosen.nonzero().flatten().tolist()) == sorted(expected.tolist())


@pytest.mark.parametrize("fraction", [0.1, 0.9])
def test_infinite_scores_never_let_non_candidates_in(fraction):
    candidates = torch.rand(1000, generator=torch.Generator().manual_seed(0)) < fraction
    scores = torch.full((1000,), float("inf"))
    available = int(candidates.sum())
    for largest in (False, True):
        chosen = select(
            scores, candidates, available - 1, largest=largest, generator=torch.Generator()
        )
        assert int(chosen.sum()) == available - 1 and not bool((chosen & ~candidates).any())
