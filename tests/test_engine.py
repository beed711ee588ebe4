"""The training engine: determinism, update order, statuses, baselines, hooks, overlap analysis."""

from __future__ import annotations

import math

import pytest
import torch

import dstbench
from dstbench import hookimpl
from dstbench.contracts.spec import spec_hash
from dstbench.engine.spec import normalize_spec
from dstbench.errors import SpecError

BASE = {
    "model": "mlp",
    "dataset": "digits",
    "epochs": 3,
    "update_period": 20,
    "density": 0.2,
    "seed": 3,
}


def run(**overrides):
    record = dstbench.execute({**BASE, **overrides})
    assert record["status"] in ("ok", "diverged", "invalid"), record.get("error", {}).get(
        "traceback"
    )
    return record


def test_same_spec_and_seed_give_identical_records_and_other_seeds_differ():
    a, b = run(criterion="snip", growth="random"), run(criterion="snip", growth="random")
    assert a["status"] == "ok"
    assert a["run_id"] == b["run_id"]
    assert a["metrics"]["curve"] == [
        {**e, "seconds": a["metrics"]["curve"][i]["seconds"]}
        for i, e in enumerate(b["metrics"]["curve"])
    ]
    assert a["metrics"]["test_accuracy"] == b["metrics"]["test_accuracy"]
    assert a["topology"]["per_update"] == b["topology"]["per_update"]
    c = run(criterion="snip", growth="random", seed=4)
    assert c["run_id"] != a["run_id"]
    assert c["metrics"]["curve"][0]["train_loss"] != a["metrics"]["curve"][0]["train_loss"]


def test_update_schedule_and_counts_follow_the_spec():
    record = run(criterion="magnitude", growth="gradient")
    steps_per_epoch = -(-1293 // 32)  # 1437 train - 144 validation, batch 32
    total = 3 * steps_per_epoch
    per_update = record["topology"]["per_update"]
    assert [u["step"] for u in per_update] == list(range(20, total + 1, 20))
    first = per_update[0]
    assert first["prune_fraction"] == pytest.approx(
        0.005 + 0.495 * (1 + math.cos(math.pi * 20 / total)) / 2
    )
    assert all(u["pruned"] == u["grown"] > 0 for u in per_update)
    layers = record["density"]["layers"]
    for name, (n_pruned, n_grown) in first["layers"].items():
        assert n_pruned == n_grown == math.ceil(first["prune_fraction"] * layers[name]["target"])
    assert record["density"]["achieved"] == pytest.approx(
        sum(v["target"] for v in layers.values()) / sum(v["numel"] for v in layers.values())
    )


def test_static_run_keeps_its_initial_mask_and_dense_run_is_dense():
    static = run(method="static", criterion="snip")
    assert static["status"] == "ok" and static["topology"]["updates"] == 0
    assert static["spec"]["criterion"] is None and static["spec"]["growth"] is None
    dense = run(method="dense", density=0.3)
    assert dense["spec"]["density"] == 1.0 and dense["density"]["achieved"] == 1.0
    assert dense["metrics"]["sparse_macs_per_sample"] == dense["metrics"]["dense_macs_per_sample"]
    # irrelevant keys do not change a baseline's identity
    assert dense["run_id"] == run(method="dense", density=0.5, criterion="set")["run_id"]
    assert (
        static["metrics"]["sparse_macs_per_sample"]
        < 0.5 * static["metrics"]["dense_macs_per_sample"]
    )


def test_final_and_best_validation_test_accuracy_are_both_recorded():
    record = run(criterion="magnitude", epochs=4)
    metrics = record["metrics"]
    assert 0.5 < metrics["test_accuracy"] <= 1.0
    assert 0.5 < metrics["best_val_test_accuracy"] <= 1.0
    assert metrics["best_val_accuracy"] == max(e["val_accuracy"] for e in metrics["curve"])
    assert len(metrics["curve"]) == 4


def test_divergence_is_recorded_not_raised():
    record = run(lr=1e6, momentum=0.0, epochs=2)
    assert record["status"] == "diverged"
    assert "loss" in record["reason"]


class Tamper:
    """An observer that breaks the invariant 'inactive weights are exactly zero'."""

    @hookimpl
    def dstbench_topology_update(self, run, update):
        layer = run.masker.layers[0]
        with torch.no_grad():
            layer.weight.view(-1)[(~layer.mask).view(-1).nonzero()[0]] = 1.0
            layer.float_mask.view(-1)[(~layer.mask).view(-1).nonzero()[0]] = 1.0


def test_an_invariant_violation_marks_the_run_invalid(use_plugins):
    use_plugins(("tamper", Tamper()))
    record = run(criterion="magnitude")
    assert record["status"] == "invalid"
    assert "inactive weights are not zero" in record["reason"]


class Counter:
    def __init__(self):
        self.calls = {"start": 0, "update": 0, "epoch": 0, "end": 0}
        self.sizes = []

    @hookimpl
    def dstbench_run_start(self, run):
        self.calls["start"] += 1

    @hookimpl
    def dstbench_topology_update(self, update):
        self.calls["update"] += 1
        self.sizes.append((update.n_pruned, update.n_grown))

    @hookimpl
    def dstbench_epoch_end(self, epoch):
        self.calls["epoch"] += 1

    @hookimpl
    def dstbench_run_end(self, run, record):
        self.calls["end"] += 1
        self.status = record["status"]


def test_lifecycle_hooks_are_called_with_matching_counts(use_plugins):
    counter = Counter()
    use_plugins(("counter", counter))
    record = run(criterion="mest", growth="momentum")
    assert counter.calls == {
        "start": 1,
        "update": record["topology"]["updates"],
        "epoch": 3,
        "end": 1,
    }
    assert counter.sizes == [(u["pruned"], u["grown"]) for u in record["topology"]["per_update"]]
    assert counter.status == "ok"


def test_paper_order_updates_magnitude_after_the_optimizer_step():
    uniform = run(criterion="magnitude", growth="random")
    paper = run(criterion="magnitude", growth="random", update_order="paper")
    assert uniform["run_id"] != paper["run_id"]
    assert (
        uniform["metrics"]["curve"][-1]["train_loss"] != paper["metrics"]["curve"][-1]["train_loss"]
    )
    # for a gradient criterion the paper's order is the uniform one: only the identity differs
    snip_uniform = run(criterion="snip", growth="random")
    snip_paper = run(criterion="snip", growth="random", update_order="paper")
    assert (
        snip_uniform["metrics"]["curve"][-1]["train_loss"]
        == snip_paper["metrics"]["curve"][-1]["train_loss"]
    )


def test_paper_fidelity_options_run_and_bernoulli_growth_lets_density_drift():
    record = run(
        criterion="magnitude",
        growth="random_bernoulli",
        mask_init="bernoulli",
        reset_momentum=False,
    )
    assert record["status"] == "ok"
    per_update = record["topology"]["per_update"]
    assert any(u["pruned"] != u["grown"] for u in per_update)


def test_comparing_criteria_does_not_perturb_the_run_and_identical_criteria_overlap_fully():
    plain = run(criterion="magnitude", growth="gradient")
    compared = run(
        criterion="magnitude",
        growth="gradient",
        compare_criteria=["magnitude", "snip", "random", "mest[lam=0.0]"],
    )
    assert (
        compared["metrics"]["curve"][-1]["train_loss"]
        == plain["metrics"]["curve"][-1]["train_loss"]
    )
    assert compared["topology"]["per_update"] == plain["topology"]["per_update"]
    overlaps = compared["analysis"]["overlap"]
    assert len(overlaps) == compared["topology"]["updates"]
    first = overlaps[0]["pooled"]
    assert first["magnitude|mest"] == 1.0  # MEST with λ=0 is magnitude
    assert first["magnitude|random"] < first["magnitude|snip"] <= 1.0
    assert set(overlaps[0]["layers"]) == set(plain["topology"]["per_update"][0]["layers"])


def test_invalid_specs_are_rejected_before_anything_runs(registry):
    with pytest.raises(SpecError, match=r"density: expected a value in \[1e-9, 1\]"):
        normalize_spec({**BASE, "density": 0.0}, registry)
    with pytest.raises(SpecError, match=r"unknown key 'epoch'.*did you mean 'epochs'"):
        normalize_spec({**BASE, "epoch": 3}, registry)
    with pytest.raises(SpecError, match=r"criterion: unknown criterion 'magnitud'.*'magnitude'"):
        normalize_spec({**BASE, "criterion": "magnitud"}, registry)
    with pytest.raises(SpecError, match="epochs: expected an integer"):
        normalize_spec({**BASE, "epochs": 2.5}, registry)
    with pytest.raises(SpecError, match="model: required"):
        normalize_spec({"dataset": "digits"}, registry)


def test_normalized_specs_fill_dataset_defaults_and_hash_stably(registry):
    spec = normalize_spec({"model": "mlp", "dataset": "digits", "criterion": "mest"}, registry)
    assert spec["batch_size"] == 32 and spec["update_period"] == 50  # digits' defaults
    assert spec["criterion"] == {"name": "mest", "params": {"lam": 1.0}}
    assert spec["model"] == {"name": "mlp", "params": {"hidden": (256, 128)}}
    assert normalize_spec(spec, registry) == spec  # idempotent
    same = normalize_spec(
        {"model": "mlp", "dataset": "digits", "criterion": "mest[lam=1]"}, registry
    )
    assert spec_hash(same) == spec_hash(spec)


def test_records_carry_provenance_of_every_component():
    record = run(criterion="set", growth="random", epochs=1)
    provenance = record["provenance"]
    assert provenance["dstbench"] == dstbench.__version__
    assert provenance["torch"] == torch.__version__
    assert provenance["components"]["criterion"] == {
        "name": "set",
        "plugin": "builtin-criteria",
        "distribution": "dstbench",
        "version": dstbench.__version__,
        "defaults": {},  # its parameters' defaults: set has none
    }
    assert provenance["components"]["schedule"]["defaults"] == {"end_fraction": 1.0, "final": 0.005}
    assert {"model", "dataset", "growth", "distribution", "schedule"} <= set(
        provenance["components"]
    )
    assert record["timings"]["steps"] == 41 and record["timings"]["train_seconds"] > 0


def test_paper_fidelity_fills_the_paper_codes_behaviour_but_keeps_explicit_choices(registry):
    from dstbench.engine.spec import apply_paper_fidelity

    spec = normalize_spec(apply_paper_fidelity({**BASE, "growth": "random"}), registry)
    assert spec["growth"]["name"] == "random_bernoulli"
    assert (
        spec["mask_init"],
        spec["update_order"],
        spec["reset_momentum"],
        spec["validation"],
    ) == (
        "bernoulli",
        "paper",
        False,
        "paper",
    )
    kept = normalize_spec(
        apply_paper_fidelity({**BASE, "growth": "gradient", "mask_init": "exact"}), registry
    )
    assert kept["growth"]["name"] == "gradient" and kept["mask_init"] == "exact"
    assert normalize_spec(apply_paper_fidelity(BASE), registry)["growth"]["name"] == "gradient"


def test_a_suite_with_paper_fidelity_runs_bernoulli_random_growth(tmp_path, registry):
    from dstbench.suite import load_suite

    path = tmp_path / "paper.toml"
    path.write_text(
        'model = "mlp"\ndataset = "digits"\nfidelity = "paper"\ncriteria = ["magnitude"]\n'
        'growth = ["random", "gradient"]\ndensities = [0.1]\nseeds = [0]\n'
    )
    specs = [cell.spec for cell in load_suite(path, registry).cells]
    assert sorted(s["growth"]["name"] for s in specs) == ["gradient", "random_bernoulli"]
    assert all(s["update_order"] == "paper" and s["mask_init"] == "bernoulli" for s in specs)
