"""Criteria that prune an inexact count (``exact=False``): growth regrows what was pruned."""

from __future__ import annotations

import pytest
import torch

import dstbench
from dstbench import hookimpl
from dstbench.errors import CriterionError
from dstbench.plugins import load_plugins
from dstbench.sparse.masker import Masker, update_violations


def _prune_below(ctx, n, threshold: float = 0.5):
    """Every active weight with |w| < threshold, whatever n is."""
    return ctx.mask & (ctx.weight.abs() < threshold)


def _prune_one_less(ctx, n):
    """n - 1 active positions: a bug unless declared inexact."""
    chosen = torch.zeros_like(ctx.mask)
    chosen.view(-1)[ctx.mask.view(-1).nonzero().squeeze(1)[: n - 1]] = True
    return chosen


class InexactPlugin:
    @hookimpl
    def dstbench_register_criteria(self, register):
        register("below", _prune_below, selects=True, exact=False)
        register("one_less", _prune_one_less, selects=True)


@pytest.fixture
def loaded():
    return load_plugins(extra=[("inexact", InexactPlugin())], entry_points=False, env={})


def test_exact_false_is_recorded_and_listed(loaded):
    info = loaded.registry.criteria["below"]
    assert info.exact is False
    assert info.metadata()["exact"] is False
    assert loaded.registry.criteria["magnitude"].metadata()["exact"] is True


def test_exact_false_needs_the_selection_form():
    class ScoreInexact:
        @hookimpl
        def dstbench_register_criteria(self, register):
            register("bad", lambda ctx: ctx.weight.abs(), exact=False)

    loaded = load_plugins(extra=[("score_inexact", ScoreInexact())], entry_points=False, env={})
    record = loaded.records["score_inexact"]
    assert record.status == "failed"
    assert "exact=False needs the selection form (selects=True)" in record.error
    assert "bad" not in loaded.registry.criteria


def test_an_exact_selection_with_the_wrong_count_is_an_error_with_a_hint(loaded):
    info = loaded.registry.criteria["one_less"]
    mask = torch.ones(4, 5, dtype=torch.bool)
    with pytest.raises(
        CriterionError, match=r"selected 4 positions, expected exactly 5.*exact=False"
    ):
        dstbench.prune(info, torch.randn(4, 5), mask, 5)


def _masker(weight: torch.Tensor, mask: torch.Tensor) -> Masker:
    param = torch.nn.Parameter(weight.clone())
    masker = Masker([("w", param)], {"w": 1.0}, generator=torch.Generator().manual_seed(0))
    layer = masker.layers[0]
    layer.mask.copy_(mask)
    layer.float_mask.copy_(mask)
    layer.target = int(mask.sum())
    masker.apply()
    param.grad = torch.randn_like(weight)
    return masker


def test_growth_regrows_the_number_actually_pruned(loaded):
    generator = torch.Generator().manual_seed(3)
    weight = torch.rand(30, 40, generator=generator) * 2 - 1  # |w| < 0.5 for about half
    mask = torch.rand(30, 40, generator=generator) < 0.6
    masker = _masker(weight, mask)
    active = int(mask.sum())
    below = int((mask & (weight.abs() < 0.5)).sum())
    update = masker.update(
        step=1,
        prune_fraction=0.1,
        criterion=loaded.registry.criteria["below"],
        criterion_params={"threshold": 0.5},
        growth=loaded.registry.growth["gradient"],
        growth_params={},
    )
    (layer_update,) = update.layers
    assert layer_update.n_requested == -(-active // 10)  # ceil(0.1 · active)
    assert layer_update.n_pruned == below != layer_update.n_requested
    assert layer_update.n_grown == below
    assert update.summary()["requested"] == layer_update.n_requested
    assert update.summary()["pruned"] == update.summary()["grown"] == below
    assert update_violations(update) == []
    assert masker.violations() == []
    assert masker.active() == active == masker.layers[0].target


def test_inexact_criterion_trains_end_to_end_with_pruned_equal_grown(use_plugins):
    use_plugins(("inexact", InexactPlugin()))
    record = dstbench.execute(
        {
            "model": "mlp",
            "dataset": "digits",
            "criterion": "below[threshold=0.05]",
            "growth": "random",
            "density": 0.2,
            "epochs": 2,
            "update_period": 10,
            "seed": 0,
        }
    )
    assert record["status"] == "ok", record.get("error") or record.get("reason")
    topology = record["topology"]
    assert topology["updates"] == len(topology["per_update"]) > 0
    assert topology["pruned"] == topology["grown"] > 0
    assert any(u["requested"] != u["pruned"] for u in topology["per_update"])
    assert abs(record["density"]["achieved"] - 0.2) < 1e-3
