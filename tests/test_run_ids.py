"""Run ids are the identity of published results: the typed spec must not change them."""

from __future__ import annotations

import json

import pytest

from dstbench.contracts import ComponentRef, RunSpec
from dstbench.engine.spec import build_spec, normalize_spec

#: Ids computed by dstbench 0.x before the typed core (the spec was a plain dict then).
PINNED = [
    ({"model": "mlp", "dataset": "digits"}, "8b132b253cc10c90"),
    (
        {
            "model": "mlp",
            "dataset": "digits",
            "criterion": "mest[lam=0.5]",
            "growth": "random",
            "density": 0.05,
            "seed": 3,
        },
        "8ee639e441094e36",
    ),
    ({"model": "mlp", "dataset": "digits", "method": "dense"}, "db44854eb68709d8"),
    (
        {
            "model": "mlp",
            "dataset": "digits",
            "method": "static",
            "density": 0.2,
            "distribution": "uniform",
        },
        "afa04cfe04fb04bb",
    ),
    (
        {
            "model": "mlp_cifar",
            "dataset": "cifar10",
            "criterion": "set",
            "update_period": 100,
            "epochs": 200,
        },
        "3ced17d35b1617b8",
    ),
    (
        {
            "model": "lenet5",
            "dataset": "fashion_mnist",
            "criterion": "snip",
            "compare_criteria": ["magnitude", "snip", "set"],
        },
        "6634f1c12126b57b",
    ),
    (
        {
            "model": "mlp",
            "dataset": "digits",
            "compare_criteria": ["magnitude", "random"],
            "jaccard_at_init": True,
        },
        "0fb4e290f440c92f",
    ),
    (
        {
            "model": "resnet56",
            "dataset": "cifar100",
            "criterion": "sensitivity",
            "density": 0.01,
            "lr_milestones": [0.3, 0.6],
        },
        "0eb5b960a7def577",
    ),
]


@pytest.mark.parametrize(("raw", "run_id"), PINNED)
def test_run_ids_are_unchanged(registry, raw, run_id):
    spec = build_spec(raw, registry)
    assert spec.run_id == run_id


@pytest.mark.parametrize(("raw", "run_id"), PINNED)
def test_a_spec_survives_its_json_form(registry, raw, run_id):
    spec = build_spec(raw, registry)
    text = json.dumps(spec.to_json())
    back = RunSpec.from_json(json.loads(text))
    assert back == spec and back.run_id == run_id
    # built again from its JSON form (what a worker does with a job file): the same run
    assert build_spec(json.loads(text), registry).run_id == run_id
    assert normalize_spec(spec, registry) == spec.to_json()


def test_specs_are_typed_frozen_and_carry_their_components(registry):
    spec = build_spec({"model": "mlp", "dataset": "digits", "criterion": "mest"}, registry)
    assert isinstance(spec.criterion, ComponentRef)
    assert spec.criterion.info is registry.criteria["mest"]
    assert dict(spec.criterion.params) == {"lam": 1.0}
    assert spec["criterion"] == {"name": "mest", "params": {"lam": 1.0}}  # the JSON view
    assert spec.batch_size == 32  # digits' default
    with pytest.raises(AttributeError):
        spec.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.criterion.params["lam"] = 2.0  # type: ignore[index]
    dense = build_spec({"model": "mlp", "dataset": "digits", "method": "dense"}, registry)
    assert dense.criterion is None and dense.density == 1.0
    assert set(dense.components) == {"model", "dataset"}


def test_spec_errors_carry_their_key(registry):
    from dstbench.errors import SpecError

    with pytest.raises(SpecError) as info:
        build_spec({"model": "mlp", "dataset": "digits", "criterion": "magnitud"}, registry)
    assert info.value.key == "criterion"
    assert "did you mean 'magnitude'" in info.value.detail
    assert not info.value.detail.startswith("criterion:")
    with pytest.raises(SpecError) as info:
        build_spec({"model": "mlp", "dataset": "digits", "density": 2}, registry)
    assert info.value.key == "density" and str(info.value).startswith("density: ")
