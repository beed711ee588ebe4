"""The batched engine against the single engine: same masks, same weights up to float
reassociation, same records; per-run failure handling; fallback for models it cannot stack.

Tolerance: after 50 steps every weight of every run agrees with the single engine's within
``ATOL`` (absolute). Measured on CPU: the largest difference is 3e-8 (a float32 ulp of the
weights); the bound leaves room for other BLAS builds, not for a different update.
"""

from __future__ import annotations

import math

import pytest
import torch

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.batched.engine import execute_group
from dstbench.batched.forward import Unbatchable, stacked_forward
from dstbench.batched.grouping import group_key, make_groups
from dstbench.models.resnet_cifar import resnet20

ATOL = 1e-5
#: One epoch of 50 iterations on every tiny dataset below.
STEPS = 50
BATCH = 16


def tiny(ctx, shape: str = "flat", classes: int = 10) -> DatasetParts:
    """Random tensors: ``STEPS`` batches of ``BATCH`` to train on, 64 samples to test on."""
    g = torch.Generator().manual_seed(5)
    dims = {"flat": (64,), "grey": (1, 20, 20), "rgb": (3, 20, 20), "higgs": (24,)}
    input_shape = dims[shape]
    n = STEPS * BATCH
    x = torch.randn(n + 64, *input_shape, generator=g)
    y = torch.randint(0, classes, (n + 64,), generator=g)
    return DatasetParts(
        train=TensorSplit(x[:n], y[:n]),
        test=TensorSplit(x[n:], y[n:]),
        input_shape=input_shape,
        num_classes=classes,
    )


class Recorder:
    """Observer + tiny datasets: keeps what the test compares, checks invariants itself."""

    def __init__(self) -> None:
        self.first_masks: dict[str, dict[str, torch.Tensor]] = {}
        self.final: dict[str, dict[str, torch.Tensor]] = {}
        self.updates: dict[str, int] = {}
        self.problems: list[str] = []
        #: run id -> what to break in that run: "invalid" or "nan".
        self.sabotage: dict[str, str] = {}

    @hookimpl
    def dstbench_register_datasets(self, register):
        register("tiny", tiny, description="random tensors, 50 batches of 16")

    @hookimpl
    def dstbench_topology_update(self, run, update):
        masker = run.masker
        exact = dstbench.registry().growth[run.spec["growth"]["name"]].exact
        for layer in masker.layers:
            count = int(layer.mask.sum())
            if exact and count != layer.target:
                self.problems.append(f"{run.run_id} {layer.name}: {count} != {layer.target}")
            if bool((layer.weight.detach()[~layer.mask] != 0).any()):
                self.problems.append(f"{run.run_id} {layer.name}: inactive weight not zero")
        for item in update.layers:
            if exact and item.n_pruned != item.n_grown:
                self.problems.append(f"{run.run_id} {item.name}: pruned != grown")
        self.updates[run.run_id] = self.updates.get(run.run_id, 0) + 1
        if run.run_id not in self.first_masks:
            self.first_masks[run.run_id] = {
                layer.name: layer.mask.clone() for layer in masker.layers
            }
        what = self.sabotage.get(run.run_id)
        with torch.no_grad():
            layer = masker.layers[0]
            if what == "invalid":  # an inactive weight becomes non-zero: the check must catch it
                layer.weight.view(-1)[(~layer.mask).view(-1).nonzero()[0]] = 1.0
            elif what == "nan":  # the run's next losses are NaN: it diverges
                layer.weight[layer.mask] = math.nan

    @hookimpl
    def dstbench_run_end(self, run, record):
        self.final[run.run_id] = {k: v.detach().clone() for k, v in run.model.state_dict().items()}


@pytest.fixture
def recorder(use_plugins):
    rec = Recorder()
    use_plugins(("recorder", rec))
    return rec


def _base(**extra):
    return {
        "dataset": "tiny",
        "model": "mlp",
        "epochs": 1,
        "batch_size": BATCH,
        "lr": 0.05,
        "val_fraction": 0.0,
        **extra,
    }


def _mixed_group() -> list[dict]:
    """K = 8: criteria, growth, densities, seeds, ΔT, ζ₀ and distributions all mixed."""
    rows = [
        ("magnitude", "random", 0.05, 0, 10),
        ("set", "gradient", 0.1, 1, 25),
        ("mest", "gradient", 0.2, 2, 10),
        ("snip", "random", 0.05, 3, 25),
        ("rsensitivity", "gradient", 0.1, 0, 10),
        ("sensitivity", "momentum", 0.2, 1, 25),
        ("random", "random", 0.3, 2, 10),
        ("magnitude", "gradient", 0.02, 4, 25),
    ]
    return [
        _base(
            criterion=c,
            growth=g,
            density=d,
            seed=s,
            update_period=p,
            prune_fraction=0.3 if i % 2 else 0.5,
            distribution="uniform" if i == 3 else "erk",
        )
        for i, (c, g, d, s, p) in enumerate(rows)
    ]


def _run_both(recorder: Recorder, specs: list[dict]):
    batched = execute_group(specs)
    first_masks, final, updates = (
        dict(recorder.first_masks),
        dict(recorder.final),
        dict(recorder.updates),
    )
    recorder.first_masks.clear()
    recorder.final.clear()
    recorder.updates.clear()
    single = [dstbench.execute(spec) for spec in specs]
    return batched, single, (first_masks, final, updates)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _assert_same_record(batched: dict, single: dict) -> None:
    assert batched["run_id"] == single["run_id"]
    assert batched["status"] == single["status"], (batched.get("error"), single.get("error"))
    assert batched.get("reason") == single.get("reason")
    assert batched["topology"] == single["topology"]  # per-update counts, layer by layer
    assert batched["density"] == single["density"]
    curve_b, curve_s = batched["metrics"]["curve"], single["metrics"]["curve"]
    assert [c["epoch"] for c in curve_b] == [c["epoch"] for c in curve_s]
    for cb, cs in zip(curve_b, curve_s, strict=True):
        assert cb["train_loss"] == pytest.approx(cs["train_loss"], rel=1e-5, abs=1e-6)
        assert cb["lr"] == cs["lr"]
        assert cb["density"] == cs["density"]
        assert cb["prune_fraction"] == cs["prune_fraction"]
    assert batched["metrics"]["test_accuracy"] == pytest.approx(
        single["metrics"]["test_accuracy"], abs=2 / 64
    )


@pytest.mark.slow
def test_mixed_group_matches_single_engine(recorder):
    specs = _mixed_group()
    batched, single, (first_masks, final, updates) = _run_both(recorder, specs)
    assert recorder.problems == []  # invariants held exactly at every update, both engines
    for spec, b, s in zip(specs, batched, single, strict=True):
        run_id = s["run_id"]
        _assert_same_record(b, s)
        assert b["status"] == "ok"
        assert updates[run_id] == recorder.updates[run_id] == STEPS // spec["update_period"]
        # The masks after the first topology update are identical, bit for bit.
        for name, mask in first_masks[run_id].items():
            assert torch.equal(mask, recorder.first_masks[run_id][name]), (run_id, name)
        # The weights after 50 steps agree within float reassociation.
        assert _max_diff(final[run_id], recorder.final[run_id]) < ATOL
        assert b["timings"]["group_size"] == len(specs)


def test_dense_static_dst_and_paper_order_mix(recorder):
    specs = [
        _base(method="dense", seed=0),
        _base(method="static", density=0.1, seed=1),
        _base(criterion="magnitude", update_order="paper", seed=2, update_period=10),
        _base(criterion="snip", update_order="paper", seed=2, update_period=10),
        _base(criterion="mest", reset_momentum=False, dense_last=True, seed=3),
        _base(criterion="magnitude", growth="random_bernoulli", mask_init="bernoulli", seed=4),
    ]
    specs[4]["update_period"] = 25
    specs[5]["update_period"] = 10
    batched, single, (_, final, _) = _run_both(recorder, specs)
    assert recorder.problems == []
    for b, s in zip(batched, single, strict=True):
        _assert_same_record(b, s)
        assert _max_diff(final[s["run_id"]], recorder.final[s["run_id"]]) < ATOL


@pytest.mark.parametrize(
    ("model", "shape", "classes"),
    [
        pytest.param("lenet5", "grey", 10, marks=pytest.mark.slow),
        pytest.param("small_conv", "rgb", 10, marks=pytest.mark.slow),
        ("mlp_higgs", "higgs", 2),
    ],
)
def test_other_models_batch(recorder, model, shape, classes):
    specs = [
        _base(
            model=model,
            dataset=f"tiny[shape={shape},classes={classes}]",
            criterion=criterion,
            seed=seed,
            density=0.1,
            update_period=25,
        )
        for criterion, seed in (("magnitude", 0), ("snip", 1), ("set", 2))
    ]
    batched, single, (first_masks, final, _) = _run_both(recorder, specs)
    assert recorder.problems == []
    for b, s in zip(batched, single, strict=True):
        _assert_same_record(b, s)
        run_id = s["run_id"]
        for name, mask in first_masks[run_id].items():
            assert torch.equal(mask, recorder.first_masks[run_id][name])
        assert _max_diff(final[run_id], recorder.final[run_id]) < ATOL


def test_mlp_cifar_batches_on_cifar_shaped_data():
    model = dstbench.registry().models["mlp_cifar"].fn((3, 32, 32), 10)
    assert stacked_forward(model) is not None


def test_broken_runs_are_dropped_and_the_others_go_on(recorder):
    specs = _mixed_group()[:4]
    from dstbench.contracts.spec import spec_hash
    from dstbench.engine.spec import normalize_spec

    run_ids = [spec_hash(normalize_spec(s, dstbench.registry())) for s in specs]
    recorder.sabotage = {run_ids[0]: "invalid", run_ids[1]: "nan"}
    batched, single, (_, final, _) = _run_both(recorder, specs)
    assert [b["status"] for b in batched] == ["invalid", "diverged", "ok", "ok"]
    assert "inactive weights are not zero" in batched[0]["reason"]
    assert "training loss became nan" in batched[1]["reason"]
    for b, s in zip(batched, single, strict=True):
        assert b["status"] == s["status"]
        assert b.get("reason") == s.get("reason")
    for b, s in zip(batched[2:], single[2:], strict=True):
        _assert_same_record(b, s)
        assert _max_diff(final[s["run_id"]], recorder.final[s["run_id"]]) < ATOL


@pytest.mark.slow
def test_a_model_that_cannot_stack_falls_back_with_one_line(recorder, capsys):
    with pytest.raises(Unbatchable, match="buffers"):
        stacked_forward(resnet20((3, 20, 20), 10))
    specs = [_base(model="resnet20", dataset="tiny[shape=rgb]", seed=s, epochs=1) for s in (0, 1)]
    for spec in specs:
        spec["batch_size"] = 400  # two iterations: keep the fallback test fast
    records = execute_group(specs)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single engine" in err[0] and "buffers" in err[0]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert "group_size" not in records[0]["timings"]


def test_grouping_keys_and_even_groups(recorder):
    registry = dstbench.registry()
    from dstbench.engine.spec import normalize_spec

    a = normalize_spec(_base(seed=0), registry)
    b = normalize_spec(_base(seed=1, criterion="snip", density=0.3, method="static"), registry)
    c = normalize_spec(_base(seed=0, lr=0.1), registry)
    assert group_key(a) == group_key(b) != group_key(c)
    items = [a] * 159
    sizes = [len(g) for g in make_groups(items, lambda s: s, 80)]
    assert sizes == [80, 79]
    assert [len(g) for g in make_groups([a, c, b], lambda s: s, 8)] == [2, 1]


@pytest.mark.slow
def test_local_executor_trains_groups(tmp_path):
    import io
    from pathlib import Path

    from dstbench.suite import run_suite
    from dstbench.suite.loader import build_suite
    from dstbench.suite.store import RunStore

    data = {
        "name": "grouped",
        "model": "mlp",
        "dataset": "digits",
        "epochs": 1,
        "densities": [0.1],
        "criteria": ["magnitude", "snip"],
        "growth": "gradient",
        "seeds": [0, 1],
        "engine": "batched",
    }
    suite = build_suite(data, dstbench.registry(), path=Path("grouped.toml"))
    assert suite.engine == "batched"
    outcome = run_suite(suite, output=tmp_path, workers=2, device="cpu", stream=io.StringIO())
    assert outcome.counts() == {"ok": 4}
    store = RunStore(tmp_path)
    for cell in suite.cells:
        record = store.load(cell.run_id)
        assert record["run_id"] == cell.run_id
        assert record["timings"]["group_size"] == 2
        assert record["execution"]["engine"] == "batched"


@pytest.mark.slow
def test_a_quick_suite_sized_study_gives_the_same_cell_means_within_seed_noise(tmp_path):
    """All 159 runs of ``suites/quick.toml`` (at 10 epochs, to keep CI short) with each engine:
    every cell's mean test accuracy over its 3 seeds agrees within the 95% Welch interval of
    the seed spread (float reassociation is the only numerical difference)."""
    import dataclasses
    import io
    import json
    import statistics
    from pathlib import Path

    from scipy import stats

    from dstbench.contracts.spec import spec_hash
    from dstbench.suite import run_suite
    from dstbench.suite.loader import load_suite
    from dstbench.suite.store import RunStore

    registry = dstbench.registry()
    suite = load_suite(Path(__file__).parent.parent / "suites" / "quick.toml", registry)
    cells = []
    for cell in suite.cells:
        spec = {**cell.spec, "epochs": 10}
        cells.append(dataclasses.replace(cell, spec=spec, run_id=spec_hash(spec)))
    suite.cells = cells
    assert len(suite.cells) == 159
    accuracy: dict[str, dict[str, list[float]]] = {}
    for engine in ("single", "batched"):
        out = tmp_path / engine
        outcome = run_suite(
            suite, output=out, workers=2, device="cpu", engine=engine, stream=io.StringIO()
        )
        assert outcome.counts() == {"ok": 159}, outcome.counts()
        found = accuracy.setdefault(engine, {})
        for _, record in RunStore(out).records():
            assert record is not None
            key = json.dumps({k: v for k, v in record["spec"].items() if k != "seed"})
            found.setdefault(key, []).append(record["metrics"]["test_accuracy"])
    single, batched = accuracy["single"], accuracy["batched"]
    assert single.keys() == batched.keys() and len(single) == 53
    worst, identical = 0.0, 0
    for key, a in single.items():
        b = batched[key]
        assert len(a) == len(b) == 3
        half = stats.t.ppf(0.975, 2) * math.sqrt(
            statistics.variance(a) / 3 + statistics.variance(b) / 3
        )
        gap = abs(statistics.mean(a) - statistics.mean(b))
        assert gap <= half + 1e-12, (key, a, b)
        worst = max(worst, gap)
        identical += a == b
    print(f"cells: {len(single)}, identical seeds: {identical}, largest mean gap {worst:.4f}")
    assert worst < 0.01  # under one point of accuracy in every cell
