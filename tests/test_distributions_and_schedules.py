"""ER/ERK/uniform layer densities and the ζ schedules, against hand computations."""

from __future__ import annotations

import math

import pytest

import dstbench
from dstbench.errors import DstbenchError

MLP_CIFAR = {"fc1": (1024, 3072), "fc2": (512, 1024), "fc3": (10, 512)}


def kept(shapes, densities):
    return sum(densities[n] * math.prod(s) for n, s in shapes.items())


@pytest.mark.parametrize(
    ("density", "expected"),
    # the protocol's worked ERK densities for the CIFAR-10 MLP (3,675,136 sparse weights)
    [
        (0.05, {"fc1": 0.041, "fc2": 0.093, "fc3": 1.0}),
        (0.2, {"fc1": 0.169, "fc2": 0.380, "fc3": 1.0}),
    ],
)
def test_erk_matches_the_papers_worked_numbers_including_the_capped_last_layer(density, expected):
    got = dstbench.layer_densities("erk", MLP_CIFAR, density)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=6e-4)
    total = sum(math.prod(s) for s in MLP_CIFAR.values())
    assert kept(MLP_CIFAR, got) == pytest.approx(density * total)


def test_erk_hand_computation_with_capping_and_resolve():
    shapes = {"a": (4, 4), "b": (100, 100)}  # r_a = 8/16 = 0.5, r_b = 200/10000 = 0.02
    d = 0.5
    # first solve: ε = 0.5·10016 / (0.5·16 + 0.02·10000) = 5008/208 ≈ 24.08 -> ε·r_a > 1: cap "a"
    # re-solve: ε = (0.5·10000 − 0.5·16) / (0.02·10000) = 4992/200 = 24.96 -> d_b = 0.4992
    got = dstbench.layer_densities("erk", shapes, d)
    assert got["a"] == 1.0
    assert got["b"] == pytest.approx(0.4992)


def test_er_uses_channel_dims_only_while_erk_includes_kernel_dims():
    shapes = {"conv": (16, 8, 3, 3), "fc": (10, 64)}
    er = dstbench.layer_densities("er", shapes, 0.3)
    erk = dstbench.layer_densities("erk", shapes, 0.3)
    r_er = {"conv": 24 / 128, "fc": 74 / 640}
    r_erk = {"conv": 30 / 1152, "fc": 74 / 640}
    for got, raw in ((er, r_er), (erk, r_erk)):
        assert got["conv"] / got["fc"] == pytest.approx(raw["conv"] / raw["fc"])
        assert kept(shapes, got) == pytest.approx(0.3 * (1152 + 640))


def test_uniform_and_full_density():
    assert dstbench.layer_densities("uniform", MLP_CIFAR, 0.3) == {n: 0.3 for n in MLP_CIFAR}
    assert dstbench.layer_densities("erk", MLP_CIFAR, 1.0) == {n: 1.0 for n in MLP_CIFAR}


def test_er_rejects_one_dimensional_shapes():
    with pytest.raises(DstbenchError, match="at least 2 dimensions"):
        dstbench.layer_densities("erk", {"v": (10,)}, 0.5)


def schedule(name, step, total, initial=0.5, **params):
    fn = dstbench.registry().schedules[name].fn
    return fn(step, total, initial, **params)


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, 0.5), (0.25, 0.4275), (0.5, 0.2525), (0.75, 0.0775), (0.9, 0.0171), (1.0, 0.005)],
)
def test_cosine_matches_the_papers_values(fraction, expected):
    assert schedule("cosine", round(fraction * 35200), 35200) == pytest.approx(expected, abs=1e-4)


def test_cosine_end_fraction_stops_updates_like_rigl():
    assert schedule("cosine", 750, 1000, end_fraction=0.75) == pytest.approx(0.005)
    assert schedule("cosine", 751, 1000, end_fraction=0.75) == 0.0


def test_linear_and_constant():
    assert schedule("linear", 500, 1000, final=0.1) == pytest.approx(0.3)
    assert schedule("constant", 999, 1000) == 0.5
    assert schedule("constant", 600, 1000, end_fraction=0.5) == 0.0
