"""Exact masks, the prune-and-grow update, and the masked optimizer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dstbench
from dstbench.engine.optim import MaskedSGD
from dstbench.sparse.masker import Masker, sparse_parameters, update_violations


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 12),
        nn.ReLU(),
        nn.Linear(12, 3),
    )


def test_sparse_parameters_are_linear_and_conv_weights_only():
    model = tiny_model()
    names = [n for n, _ in sparse_parameters(model)]
    assert names == ["0.weight", "4.weight", "6.weight"]
    assert [n for n, _ in sparse_parameters(model, dense_first=True, dense_last=True)] == [
        "4.weight"
    ]


def make_masker(model, densities=None, mode="exact", seed=0):
    layers = sparse_parameters(model)
    densities = densities or {n: 0.3 for n, _ in layers}
    return Masker(layers, densities, generator=torch.Generator().manual_seed(seed), mask_init=mode)


def test_exact_init_has_round_d_times_n_active_and_zero_inactive_weights():
    model = tiny_model()
    masker = make_masker(model)
    for layer in masker.layers:
        assert int(layer.mask.sum()) == round(0.3 * layer.numel) == layer.target
        assert bool((layer.weight[~layer.mask] == 0).all())
        assert bool((layer.weight[layer.mask] != 0).all())
    assert masker.violations() == []


def test_bernoulli_init_is_only_right_in_expectation():
    counts = {
        make_masker(tiny_model(), mode="bernoulli", seed=s).layers[1].target for s in range(10)
    }
    assert len(counts) > 1
    assert all(abs(c - 0.3 * 768) < 60 for c in counts)


def fake_step(model, masker):
    """A backward pass so that every weight has a dense gradient."""
    x = torch.randn(5, 2, 6, 6)
    model(x).pow(2).sum().backward()


def test_update_keeps_exact_counts_zeroes_removed_and_starts_new_weights_at_zero():
    model = tiny_model()
    masker = make_masker(model)
    fake_step(model, masker)
    info = dstbench.registry()
    before = {
        layer.name: (layer.mask.clone(), layer.weight.detach().clone()) for layer in masker.layers
    }
    update = masker.update(
        step=1,
        prune_fraction=0.5,
        criterion=info.criteria["magnitude"],
        criterion_params={},
        growth=info.growth["gradient"],
        growth_params={},
    )
    assert update_violations(update) == []
    assert masker.violations() == []
    for u in update.layers:
        layer = next(layer for layer in masker.layers if layer.name == u.name)
        old_mask, old_weight = before[u.name]
        assert u.n_pruned == u.n_grown == -(-layer.target // 2)  # ceil(0.5 · active)
        assert int(layer.mask.sum()) == layer.target
        new_positions = layer.mask & ~old_mask
        kept = layer.mask & old_mask
        assert bool((layer.weight[new_positions] == 0).all())
        assert torch.equal(
            layer.weight[kept], old_weight[kept]
        )  # survivors and re-grown keep values
        assert bool((layer.weight[~layer.mask] == 0).all())


def test_update_resets_momentum_of_new_weights_but_not_of_regrown_ones():
    model = tiny_model()
    masker = make_masker(model, {"0.weight": 0.5, "4.weight": 0.5, "6.weight": 0.5})
    layer = masker.layers[1]
    buffer = torch.ones_like(layer.weight)
    old_mask = layer.mask.clone()
    registry = dstbench.registry()
    update = masker.update(
        step=1,
        prune_fraction=0.9,
        criterion=registry.criteria["random"],
        criterion_params={},
        growth=registry.growth["random"],
        growth_params={},
        momentum=lambda p: buffer if p is layer.weight else None,
        reset_momentum=True,
    )
    new_positions = layer.mask & ~old_mask
    assert int(new_positions.sum()) > 0
    assert bool((buffer[new_positions] == 0).all())
    regrown = next(u for u in update.layers if u.name == layer.name)
    assert regrown.n_regrown > 0  # with ζ=0.9 some pruned positions come straight back
    assert bool((buffer[~new_positions] == 1).all())


def test_full_layers_are_skipped_and_violations_are_detected():
    model = tiny_model()
    masker = make_masker(model, {"0.weight": 1.0, "4.weight": 0.2, "6.weight": 0.2})
    fake_step(model, masker)
    registry = dstbench.registry()
    update = masker.update(
        step=1,
        prune_fraction=0.3,
        criterion=registry.criteria["magnitude"],
        criterion_params={},
        growth=registry.growth["random"],
        growth_params={},
    )
    assert [u.name for u in update.layers] == ["4.weight", "6.weight"]
    layer = masker.layers[1]
    with torch.no_grad():
        flat = layer.weight.view(-1)
        flat[(~layer.mask).view(-1).nonzero()[0]] = 1.0
    assert any("inactive weights are not zero" in v for v in masker.violations())
    layer.mask.view(-1)[(~layer.mask).view(-1).nonzero()[0]] = True
    assert any("target" in v for v in masker.violations())


@pytest.mark.parametrize(
    ("momentum", "nesterov", "weight_decay"),
    [(0.9, True, 5e-4), (0.9, False, 1e-4), (0.9, True, 0.0), (0.0, False, 0.0)],
)
def test_masked_sgd_without_masks_is_bit_identical_to_torch_sgd(momentum, nesterov, weight_decay):
    ours, theirs = tiny_model(), tiny_model()
    opt_ours = MaskedSGD(
        ours.parameters(), lr=0.05, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
    opt_theirs = torch.optim.SGD(
        theirs.parameters(),
        lr=0.05,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        foreach=True,
    )
    torch.manual_seed(1)
    for _ in range(5):
        x = torch.randn(4, 2, 6, 6)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            grads = [p.grad.clone() for p in model.parameters()]
            opt.step()
            # the step never modifies .grad (criteria read it after the step in paper order)
            if opt is opt_ours:
                assert all(
                    torch.equal(g, p.grad) for g, p in zip(grads, model.parameters(), strict=True)
                )
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_masked_sgd_keeps_inactive_weights_exactly_zero_with_dense_gradients_and_momentum():
    model = tiny_model()
    masker = make_masker(model)
    opt = MaskedSGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt.set_masks(masker.float_masks())
    for _ in range(10):
        opt.zero_grad()
        model(torch.randn(4, 2, 6, 6)).pow(2).mean().backward()
        opt.step()
    assert masker.violations() == []
    # the momentum of inactive positions is dense (as in the paper's code), the weights are not
    layer = masker.layers[1]
    assert bool((opt.momentum_buffer(layer.weight)[~layer.mask] != 0).any())
