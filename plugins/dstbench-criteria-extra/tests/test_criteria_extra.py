"""Tests of the criteria-extra plugin, using dstbench's conformance kit (dstbench.testing)."""

from __future__ import annotations

import importlib.metadata as md

import dstbench_criteria_extra as plugin
import pytest
import torch

import dstbench
from dstbench.testing import check_plugin


def test_the_plugin_passes_the_conformance_kit():
    report = check_plugin(plugin)
    assert {c.name for c in report.components} == {"taylor", "gradstep"}


def test_set_paper_is_a_built_in_now(dstbench_plugins):
    loaded = dstbench_plugins(plugin)  # no collision with the core's set_paper
    assert loaded.registry.criteria["set_paper"].plugin == "builtin-criteria"


def test_taylor_and_gradstep_scores(dstbench_plugins, dstbench_layer):
    dstbench_plugins(plugin)
    ctx = dstbench_layer((6, 5))
    registry = dstbench.registry()
    taylor = registry.criteria["taylor"].fn(ctx)
    torch.testing.assert_close(taylor, (ctx.weight * ctx.grad) ** 2)
    gradstep = registry.criteria["gradstep"].fn(ctx, gamma=0.5)
    torch.testing.assert_close(gradstep, (ctx.weight - 0.5 * ctx.grad).abs())
    assert registry.criteria["gradstep"].params == {"gamma": 1.0}  # the paper code's default
    assert registry.criteria["taylor"].needs_grad and registry.criteria["gradstep"].needs_grad


def test_taylor_prunes_the_smallest_w_times_g(dstbench_plugins):
    dstbench_plugins(plugin)
    weight = torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    grad = torch.tensor([[0.1, 0.1, -0.01, 4.0]])  # (w·g)² = 0.01, 0.04, 0.0009, 4
    mask = torch.ones_like(weight, dtype=torch.bool)
    kept = dstbench.prune("taylor", weight, mask, 2, grad=grad)
    assert kept.tolist() == [[False, True, False, True]]


@pytest.mark.parametrize("criterion", ["taylor", "gradstep"])
def test_each_criterion_trains_on_digits(dstbench_plugins, dstbench_run, criterion):
    dstbench_plugins(plugin)
    record = dstbench_run(criterion=criterion, growth="gradient", epochs=3)
    assert record["status"] == "ok", record.get("error") or record.get("reason")
    assert record["topology"]["pruned"] == record["topology"]["grown"] > 0
    assert abs(record["density"]["achieved"] - 0.2) < 1e-3
    assert record["metrics"]["test_accuracy"] > 0.5
    component = record["provenance"]["components"]["criterion"]
    assert component["name"] == criterion
    assert component["plugin"] == "dstbench_criteria_extra"


def test_installed_entry_point_points_at_this_module():
    try:
        dist = md.distribution("dstbench-criteria-extra")
    except md.PackageNotFoundError:
        pytest.skip("dstbench-criteria-extra is not installed")
    (entry_point,) = [ep for ep in dist.entry_points if ep.group == "dstbench"]
    assert (entry_point.name, entry_point.value) == ("criteria-extra", "dstbench_criteria_extra")
    assert dist.version == plugin.__version__
    check_plugin("criteria-extra")  # through the installed entry point
