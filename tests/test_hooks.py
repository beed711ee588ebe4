"""One test per hook (the meta-test in test_hook_docs.py requires a ``test_hook_<name>``):
each hook is called when its docstring says, with what it says.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.plugins import load_plugins


def _load(name, plugin):
    loaded = load_plugins(extra=[(name, plugin)], entry_points=False, env={})
    assert loaded.records[name].status == "loaded", loaded.records[name].error
    return loaded


def test_hook_register_criteria():
    class Plugin:
        @hookimpl
        def dstbench_register_criteria(self, register):
            def shifted(ctx, shift: float = 0.5):
                """|w - shift|."""
                return (ctx.weight - shift).abs()

            register("shifted", shifted, paper_order="after")

    info = _load("p", Plugin()).registry.criteria["shifted"]
    assert (info.params, info.paper_order, info.plugin, info.description) == (
        {"shift": 0.5},
        "after",
        "p",
        "|w - shift|.",
    )
    weight = torch.tensor([[0.0, 0.4, 1.0, -1.0]])
    kept = dstbench.prune(info, weight, torch.ones_like(weight, dtype=torch.bool), 1, shift=0.9)
    assert kept.tolist() == [[True, True, False, True]]  # |1.0 - 0.9| is the lowest


def test_hook_register_growth():
    class Plugin:
        @hookimpl
        def dstbench_register_growth(self, register):
            def first(ctx):
                """Lowest index first."""
                return -torch.arange(ctx.mask.numel(), dtype=torch.float).view_as(ctx.mask)

            register("first", first)

    info = _load("p", Plugin()).registry.growth["first"]
    mask = torch.tensor([True, False, False, True, False])
    assert dstbench.grow(info, mask, 2).tolist() == [True, True, True, True, False]


def test_hook_register_schedules():
    class Plugin:
        @hookimpl
        def dstbench_register_schedules(self, register):
            register("halving", lambda step, total, initial: initial / 2, description="ζ₀/2")

    info = _load("p", Plugin()).registry.schedules["halving"]
    assert info.fn(1, 10, 0.5) == 0.25


def test_hook_register_distributions():
    class Plugin:
        @hookimpl
        def dstbench_register_distributions(self, register):
            def first_dense(shapes, density):
                """Everything in the first layer."""
                total = sum(torch.Size(s).numel() for s in shapes.values())
                names = list(shapes)
                first = torch.Size(shapes[names[0]]).numel()
                rest = (density * total - first) / (total - first)
                return {n: 1.0 if i == 0 else rest for i, n in enumerate(names)}

            register("first_dense", first_dense)

    loaded = _load("p", Plugin())
    shapes = {"a": (10, 10), "b": (10, 30)}
    densities = dstbench.layer_densities(loaded.registry.distributions["first_dense"], shapes, 0.5)
    assert densities == {"a": 1.0, "b": pytest.approx(1 / 3)}


def test_hook_register_models():
    class Plugin:
        @hookimpl
        def dstbench_register_models(self, register):
            def linear(shape, classes, bias=True):
                """One layer."""
                return nn.Sequential(nn.Flatten(), nn.Linear(64, classes, bias=bias))

            register("linear", linear)

    info = _load("p", Plugin()).registry.models["linear"]
    assert info.params == {"bias": True}
    assert info.fn((1, 8, 8), 10, bias=False)[1].bias is None


def test_hook_register_datasets():
    def tiny(ctx, n: int = 40):
        """Four points per class."""
        x = torch.randn(n, 2)
        y = torch.arange(n) % 10
        return DatasetParts(TensorSplit(x, y), TensorSplit(x, y), (2,), 10)

    class Plugin:
        @hookimpl
        def dstbench_register_datasets(self, register):
            register("tiny", tiny, defaults={"batch_size": 8})

    info = _load("p", Plugin()).registry.datasets["tiny"]
    assert dict(info.defaults) == {"batch_size": 8}
    assert info.metadata()["defaults"] == {"batch_size": 8}


def test_hook_register_executors():
    def inline(jobs: int = 1):
        """Run every job in this process."""
        return ("inline", jobs)

    class Plugin:
        @hookimpl
        def dstbench_register_executors(self, register):
            register("inline", inline)

    loaded = _load("p", Plugin())
    info = loaded.registry.executors["inline"]
    assert (info.params, info.plugin) == ({"jobs": 1}, "p")
    assert loaded.records["p"].registered == {"executors": ["inline"]}


class Recorder:
    """Records every lifecycle call with what it was given."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def dstbench_run_start(self, run):
        active = sum(int(layer.mask.sum()) for layer in run.masker.layers)
        self.calls.append(("start", run.run_id, run.masker is not None, run.artifact_dir, active))

    @hookimpl
    def dstbench_topology_update(self, run, update):
        layers = {
            u.name: (u.n_requested, u.n_pruned, u.n_grown, int(u.pruned.sum()))
            for u in update.layers
        }
        self.calls.append(("update", update.step, update.prune_fraction, layers))

    @hookimpl
    def dstbench_epoch_end(self, run, epoch):
        self.calls.append(("epoch", epoch.as_dict()))

    @hookimpl
    def dstbench_run_end(self, run, record):
        self.calls.append(("end", record["run_id"], record["status"]))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    recorder = Recorder()
    loaded = _load("recorder", recorder)
    artifacts = tmp_path_factory.mktemp("artifacts")
    spec = {
        "model": "mlp[hidden=[32]]",
        "dataset": "digits",
        "epochs": 2,
        "batch_size": 128,
        "update_period": 3,
        "density": 0.2,
        "seed": 0,
    }
    record = dstbench.execute(spec, plugins=loaded, artifact_dir=artifacts)
    assert record["status"] == "ok"
    return recorder.calls, record, artifacts


def test_hook_run_start(recorded):
    calls, record, artifacts = recorded
    assert calls[0][0] == "start"
    assert calls[0][1:4] == (record["run_id"], True, artifacts)
    targets = sum(layer["target"] for layer in record["density"]["layers"].values())
    assert calls[0][4] == targets  # masks already built when the run starts


def test_hook_topology_update(recorded):
    calls, record, _ = recorded
    updates = [c for c in calls if c[0] == "update"]
    assert [c[1] for c in updates] == [u["step"] for u in record["topology"]["per_update"]]
    assert all(step % 3 == 0 for _, step, _, _ in updates)
    per_update = record["topology"]["per_update"]
    for (_, _, fraction, layers), summary in zip(updates, per_update, strict=True):
        assert fraction == summary["prune_fraction"]
        assert {k: [v[1], v[2]] for k, v in layers.items()} == summary["layers"]
        assert all(req == pruned == grown == mask for req, pruned, grown, mask in layers.values())


def test_hook_epoch_end(recorded):
    calls, record, _ = recorded
    epochs = [c[1] for c in calls if c[0] == "epoch"]
    assert epochs == record["metrics"]["curve"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    # Called after validation and after that epoch's updates.
    positions = [i for i, c in enumerate(calls) if c[0] == "epoch"]
    assert all(calls[i - 1][0] == "update" for i in positions)


def test_hook_run_end(recorded):
    calls, record, _ = recorded
    assert calls[-1] == ("end", record["run_id"], "ok")
    assert sum(c[0] == "end" for c in calls) == 1
