"""Every built-in criterion's choice, checked against a hand computation."""

from __future__ import annotations

import pytest
import torch

import dstbench
from dstbench.errors import CriterionError


def pruned(criterion, weight, mask, n, grad=None, seed=0, **params):
    """Positions turned off by ``dstbench.prune`` as a sorted list of flat indices."""
    new = dstbench.prune(
        criterion,
        weight,
        mask,
        n,
        grad=grad,
        generator=torch.Generator().manual_seed(seed),
        **params,
    )
    assert int(new.sum()) == int(mask.sum()) - n
    return sorted((mask & ~new).flatten().nonzero().flatten().tolist())


W = torch.tensor([0.5, -0.1, 0.3, -0.7, 0.05, 0.0, -0.02, 0.9])
G = torch.tensor([0.0, 2.0, -0.5, 0.1, 1.0, 3.0, 0.0, -0.2])
ALL = torch.ones(8, dtype=torch.bool)


def test_magnitude_prunes_smallest_absolute_active_weights():
    # |w| = .5 .1 .3 .7 .05 0 .02 .9 -> smallest three: idx 5 (0), 6 (.02), 4 (.05)
    assert pruned("magnitude", W, ALL, 3) == [4, 5, 6]


def test_inactive_positions_are_never_pruned_even_with_the_lowest_score():
    mask = ALL.clone()
    mask[[5, 6]] = False  # the two smallest are inactive
    assert pruned("magnitude", W, mask, 2) == [1, 4]


def test_mest_adds_lambda_times_gradient_magnitude():
    # λ=1: |w|+|g| = .5 2.1 .8 .8 1.05 3 .02 1.1 -> lowest two: 6 (.02), 0 (.5)
    assert pruned("mest", W, ALL, 2, grad=G) == [0, 6]
    # λ=0.01: ≈ |w| + tiny -> 5 (.03), 6 (.02)
    assert pruned("mest", W, ALL, 2, grad=G, lam=0.01) == [5, 6]


def test_snip_scores_zero_gradient_weights_lowest_via_its_epsilon():
    # |w·g| + 1e-5 = .00001 .20001 .15001 .07001 .05001 .00001 .00001 .18001
    # three exact ties at 1e-5 (idx 0, 5, 6): pruning 3 takes exactly those
    assert pruned("snip", W, ALL, 3, grad=G) == [0, 5, 6]
    # pruning 1 takes one of the tied ones
    assert pruned("snip", W, ALL, 1, grad=G)[0] in (0, 5, 6)


def test_rsensitivity_keeps_zero_gradient_weights():
    # |w|/(|g|+1e-8)+1: idx 0 and 6 have g=0 -> huge scores, never pruned first
    scores = W.abs() / (G.abs() + 1e-8) + 1
    expected = sorted(torch.argsort(scores)[:3].tolist())
    assert pruned("rsensitivity", W, ALL, 3, grad=G) == expected
    assert 0 not in expected and 6 not in expected


def test_sensitivity_prunes_zero_gradient_weights_first():
    # |g|/(|w|+1e-8)+1: idx 0 and 6 score exactly 1, the minimum
    assert pruned("sensitivity", W, ALL, 2, grad=G) == [0, 6]


@pytest.mark.parametrize("criterion", ["mest", "snip", "rsensitivity", "sensitivity"])
def test_gradient_criteria_require_the_gradient(criterion):
    with pytest.raises(CriterionError, match="needs the gradient"):
        dstbench.prune(criterion, W, ALL, 1)


def test_set_takes_half_smallest_positive_and_half_negative_closest_to_zero():
    w = torch.tensor([0.4, 0.1, 0.2, 0.9, -0.05, -0.6, -0.3, -0.01])
    # n=4: 2 smallest non-negative (0.1, 0.2 -> idx 1, 2) + 2 negatives closest to 0 (-0.01, -0.05)
    assert pruned("set", w, torch.ones(8, dtype=torch.bool), 4) == [1, 2, 4, 7]
    # odd n=3: ceil(3/2)=2 non-negative + 1 negative
    assert pruned("set", w, torch.ones(8, dtype=torch.bool), 3) == [1, 2, 7]


def test_set_takes_the_rest_from_the_other_sign_when_one_runs_short():
    w = torch.tensor([0.4, 0.1, -0.2, -0.9, -0.5, -0.3])
    mask = torch.ones(6, dtype=torch.bool)
    # n=4 wants 2+2, only 2 positives exist: all positives + the 2 negatives closest to zero
    assert pruned("set", w, mask, 4) == [0, 1, 2, 5]
    # negatives short: only one negative
    w2 = torch.tensor([0.4, 0.1, 0.2, 0.9, -0.5])
    assert pruned("set", w2, torch.ones(5, dtype=torch.bool), 4) == [0, 1, 2, 4]


def test_set_ignores_inactive_weights():
    w = torch.tensor([0.01, 0.1, 0.2, -0.02, -0.5, -0.3])
    mask = torch.tensor([False, True, True, False, True, True])
    assert pruned("set", w, mask, 2) == [1, 5]


def test_random_is_seeded_and_uniform_over_active_weights():
    w = torch.randn(20)
    mask = torch.ones(20, dtype=torch.bool)
    mask[:5] = False
    first = pruned("random", w, mask, 5, seed=1)
    assert first == pruned("random", w, mask, 5, seed=1)
    assert all(i >= 5 for i in first)
    counts = torch.zeros(20)
    for seed in range(600):
        counts[pruned("random", w, mask, 5, seed=seed)] += 1
    # each active position is chosen with probability 5/15: 200 of 600 expected
    assert counts[:5].sum() == 0
    assert counts[5:].min() > 140 and counts[5:].max() < 260


def test_criteria_work_on_conv_shaped_weights():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    mask = torch.rand(4, 3, 3, 3) < 0.5
    n = int(mask.sum()) // 3
    for name in ["magnitude", "set", "mest", "snip", "rsensitivity", "sensitivity", "random"]:
        new = dstbench.prune(
            name, w, mask, n, grad=torch.randn_like(w), generator=torch.Generator()
        )
        assert new.shape == w.shape
        assert int((mask & ~new).sum()) == n
        assert not bool((new & ~mask).any())
    expected = w.abs().masked_fill(~mask, float("inf")).flatten().argsort()[:n]
    got = (mask & ~dstbench.prune("magnitude", w, mask, n)).flatten().nonzero().flatten()
    assert sorted(got.tolist()) == sorted(expected.tolist())


def test_prune_does_not_modify_its_inputs():
    w, g, mask = W.clone(), G.clone(), ALL.clone()
    for name in ["magnitude", "set", "mest", "snip", "rsensitivity", "sensitivity", "random"]:
        dstbench.prune(name, w, mask, 3, grad=g)
        assert torch.equal(w, W) and torch.equal(g, G) and torch.equal(mask, ALL)


def test_prune_rejects_impossible_counts_and_unknown_parameters():
    with pytest.raises(CriterionError, match="only 8 available"):
        dstbench.prune("magnitude", W, ALL, 9)
    with pytest.raises(dstbench.DstbenchError, match=r"no parameter 'lambda'.*'lam'"):
        dstbench.prune("mest", W, ALL, 1, grad=G, **{"lambda": 2.0})
