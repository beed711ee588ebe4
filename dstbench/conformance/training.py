"""Conformance checks that train: models, datasets, and components inside a short real run.

The short runs use the built-in ``mlp`` (one hidden layer of 32) on the built-in ``digits``
(bundled with scikit-learn, no download): one epoch, a topology update every 2 iterations, so
a criterion or growth method is exercised a few times by the real engine in about a second.
"""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pluggy import HookImpl
from torch import nn

from dstbench.conformance._collect import Collector, error_text
from dstbench.conformance.report import Check
from dstbench.conformance.selection import metadata_checks
from dstbench.contracts.data import DatasetContext, DatasetParts, TensorSplit
from dstbench.engine.data import make_batches
from dstbench.errors import DataError, DstbenchError
from dstbench.plugins import LoadedPlugins
from dstbench.registry import ComponentInfo
from dstbench.sparse.masker import sparse_parameters

#: (input shape, classes) every model is tried on: digits-like images, CIFAR-like images,
#: and a binary tabular task (Higgs-like). A model must take at least one of them and decline
#: the others with a DstbenchError.
MODEL_INPUTS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((1, 8, 8), 10),
    ((3, 32, 32), 10),
    ((24,), 2),
)

#: Lifecycle hooks a plugin may implement (checked through a short run).
LIFECYCLE_HOOKS = (
    "dstbench_run_start",
    "dstbench_topology_update",
    "dstbench_epoch_end",
    "dstbench_run_end",
)

#: The short run's spec; the component under test replaces its entry.
SHORT_RUN: dict[str, Any] = {
    "model": "mlp[hidden=[32]]",
    "dataset": "digits",
    "criterion": "magnitude",
    "growth": "random",
    "density": 0.2,
    "epochs": 1,
    "batch_size": 128,
    "update_period": 2,
    "seed": 0,
}


def _short_run_spec(plugins: LoadedPlugins, **override: Any) -> tuple[dict[str, Any] | None, str]:
    """The short-run spec, or None and the reason when the built-ins it needs are missing."""
    registry = plugins.registry
    spec = {**SHORT_RUN, **override}
    needs = {"model": "mlp", "dataset": "digits", "criterion": "magnitude", "growth": "random"}
    for key, builtin in needs.items():
        if key in override:
            continue
        if builtin not in registry.table(key):
            return None, f"the short run needs the built-in {key} {builtin!r}, which is not loaded"
    return spec, ""


def _run(plugins: LoadedPlugins, spec: Mapping[str, Any], device: str) -> dict[str, Any]:
    from dstbench.engine.single import execute

    with tempfile.TemporaryDirectory(prefix="dstbench-check-") as tmp:
        return execute(spec, plugins=plugins, device=device, artifact_dir=Path(tmp))


def _run_problem(record: Mapping[str, Any]) -> str | None:
    if record["status"] == "ok":
        return None
    if record.get("error"):
        return f"run {record['status']}: {record['error']['type']}: {record['error']['message']}"
    return f"run {record['status']}: {record.get('reason')}"


def check_trains(
    info: ComponentInfo, plugins: LoadedPlugins, *, device: str = "cpu"
) -> list[Check]:
    """A criterion or growth method drives a short DST run that ends ``ok`` with the
    density intact (the engine checks pruned == grown and exact layer counts at every update).
    """
    name = "trains: a short DST run on digits ends ok"
    key = "criterion" if info.kind == "criterion" else "growth"
    spec, reason = _short_run_spec(plugins, **{key: info.name})
    if spec is None:
        return [Check(name, "skip", reason)]
    record = _run(plugins, spec, device)
    problem = _run_problem(record)
    if problem:
        return [
            Check(
                name,
                "fail",
                problem,
                f"reproduce with: dstbench run --model mlp --dataset digits --{key} {info.name} "
                "--epochs 1 --update-period 2 --density 0.2",
            )
        ]
    topology = record["topology"]
    detail = (
        f"{topology['updates']} updates, {topology['pruned']} pruned / {topology['grown']} grown, "
        f"test accuracy {record['metrics']['test_accuracy']:.3f}"
    )
    return [Check(name, "pass", detail)]


def _train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, classes: int) -> str | None:
    """One SGD step; returns a problem or None."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    model.train()
    out = model(x)
    binary = classes == 2 and out.dim() == 2 and out.shape[1] == 1
    if out.dim() != 2 or (out.shape[1] != classes and not binary):
        return f"output shape {tuple(out.shape)}, expected ({x.shape[0]}, {classes})"
    if binary:
        loss = nn.functional.binary_cross_entropy_with_logits(out.squeeze(1), y.float())
    else:
        loss = nn.functional.cross_entropy(out, y)
    if not torch.isfinite(loss):
        return f"loss is {float(loss)}"
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)):
        return "no parameter changed after an SGD step (no gradient reaches them)"
    return None


def check_model(
    info: ComponentInfo, *, params: Mapping[str, Any] | None = None, device: str = "cpu"
) -> list[Check]:
    """The model builds for at least one input shape (declining others with a DstbenchError),
    has Linear/Conv weights to sparsify, gives (batch, classes) outputs and trains one step.
    """
    resolved = info.resolve_params(params)
    c = Collector()
    builds = "builds for the shapes it accepts, declines others with a DstbenchError"
    sparse = "has Linear or Conv weights to sparsify"
    step = "runs one training step"
    accepted = 0
    for shape, classes in MODEL_INPUTS:
        case = f"input {shape}, {classes} classes"
        try:
            torch.manual_seed(0)
            model = info.fn(shape, classes, **resolved)
            if not isinstance(model, nn.Module):
                c.fail(
                    builds,
                    f"{case}: returned {type(model).__name__}",
                    "return a torch.nn.Module",
                )
                continue
            model = model.to(device)
            x = torch.randn((4, *shape), generator=torch.Generator().manual_seed(0)).to(device)
            y = torch.arange(4, device=device) % classes
            problem = _train_step(model, x, y, classes)
        except DstbenchError as exc:
            c.ok(builds, f"{case}: declined ({exc})")
            continue
        except Exception as exc:
            c.fail(
                builds,
                f"{case}: {error_text(exc)}",
                "check the input shape in the factory and raise dstbench.DstbenchError with a "
                "clear message for shapes the model cannot take",
            )
            continue
        accepted += 1
        c.ok(builds, f"{case}: ok")
        if problem:
            c.fail(
                step,
                f"{case}: {problem}",
                "return one logit per class (or a single logit for 2 classes) per sample",
            )
        else:
            c.ok(step)
        if sparse_parameters(model):
            c.ok(sparse)
        else:
            c.fail(
                sparse,
                f"{case}: no nn.Linear or nn.Conv* module",
                "dstbench sparsifies the weights of nn.Linear and nn.Conv* modules; build the "
                "model from them",
            )
    if accepted == 0:
        c.fail(
            "accepts at least one input shape",
            f"none of {[s for s, _ in MODEL_INPUTS]} was accepted",
            "the conformance kit tries (1, 8, 8), (3, 32, 32) and (24,); accept one of them",
        )
    return metadata_checks(info) + c.checks()


def _split_problem(split: Any, parts: DatasetParts, label: str) -> str | None:
    if isinstance(split, TensorSplit):
        if len(split) == 0:
            return f"{label} split is empty"
        if tuple(split.x.shape[1:]) != tuple(parts.input_shape):
            sample = tuple(split.x.shape[1:])
            return f"{label} x has sample shape {sample}, input_shape is {parts.input_shape}"
        if split.y.dtype != torch.long:
            return f"{label} y has dtype {split.y.dtype}, expected torch.long"
        low, high = int(split.y.min()), int(split.y.max())
        if low < 0 or high >= parts.num_classes:
            return f"{label} labels span [{low}, {high}], expected [0, {parts.num_classes - 1}]"
    return None


def check_dataset(
    info: ComponentInfo,
    plugins: LoadedPlugins,
    *,
    params: Mapping[str, Any] | None = None,
    data_root: str | Path | None = None,
    download: bool = False,
    device: str = "cpu",
) -> list[Check]:
    """The dataset loads (or is skipped when its files are absent), returns consistent
    :class:`~dstbench.DatasetParts`, its registered defaults are valid run-spec values, and one
    training step runs on its first batch.
    """
    from dstbench.contracts.data import resolve_data_root
    from dstbench.engine.spec import normalize_spec

    resolved = info.resolve_params(params)
    checks = metadata_checks(info)
    c = Collector()
    loads = "loads and returns DatasetParts"
    context = DatasetContext(root=resolve_data_root(data_root), download=download)
    try:
        parts = info.fn(context, **resolved)
    except DataError as exc:
        return [*checks, Check(loads, "skip", f"data not available: {exc}")]
    except Exception as exc:
        c.fail(
            loads,
            error_text(exc),
            "raise dstbench.errors.DataError naming the path searched and how to get the data "
            "when files are missing",
        )
        return checks + c.checks()
    if not isinstance(parts, DatasetParts):
        c.fail(loads, f"returned {type(parts).__name__}", "return dstbench.DatasetParts")
        return checks + c.checks()
    c.ok(loads, f"input {tuple(parts.input_shape)}, {parts.num_classes} classes")
    consistent = "splits match input_shape and num_classes"
    problems = [
        p
        for p in (
            _split_problem(parts.train, parts, "train"),
            _split_problem(parts.test, parts, "test"),
            _split_problem(parts.val, parts, "val") if parts.val is not None else None,
        )
        if p
    ]
    if problems:
        c.fail(
            consistent,
            problems[0],
            "x is (N, *input_shape), y is a long tensor of class indices in [0, num_classes)",
        )
    else:
        c.ok(consistent)
    defaults = "registered defaults are valid run-spec values"
    if "mlp" in plugins.registry.models:
        try:
            normalize_spec({"model": "mlp", "dataset": info.name}, plugins.registry)
        except DstbenchError as exc:
            c.fail(defaults, str(exc), "register defaults= with run-spec keys and valid values")
        else:
            c.ok(defaults)
    step = "runs one training step on its first batch"
    try:
        batches = make_batches(
            parts.train, 8, device=torch.device(device), shuffle=False, num_workers=0
        )
        x, y = next(iter(batches))
        torch.manual_seed(0)
        features = math.prod(parts.input_shape)
        model = nn.Sequential(nn.Flatten(), nn.Linear(features, parts.num_classes)).to(device)
        problem = _train_step(model, x.float(), y, parts.num_classes)
    except Exception as exc:
        c.fail(step, error_text(exc), "make the train split iterable into (x, y) batches")
    else:
        if problem:
            c.fail(step, problem, "check the labels and the inputs (finite values)")
        else:
            c.ok(step)
    return checks + c.checks()


def check_lifecycle(
    plugins: LoadedPlugins, plugin: str, hooks: list[str], *, device: str = "cpu"
) -> list[Check]:
    """The plugin's lifecycle hooks are called during a short DST run and none of them fails it."""
    name = "lifecycle hooks run through a short DST run"
    spec, reason = _short_run_spec(plugins)
    if spec is None:
        return [Check(name, "skip", reason)]
    calls: Counter[str] = Counter()

    def before(hook_name: str, impls: Sequence[HookImpl], kwargs: Mapping[str, Any]) -> None:
        if any(impl.plugin_name == plugin for impl in impls):
            calls[hook_name] += 1

    def after(*_args: Any) -> None:
        return None

    undo = plugins.manager.add_hookcall_monitoring(before, after)
    try:
        record = _run(plugins, spec, device)
    finally:
        undo()
    problem = _run_problem(record)
    if problem:
        return [
            Check(
                name,
                "fail",
                problem,
                "a lifecycle hook that raises fails the run: catch what may go wrong (e.g. I/O) "
                "or fix the error",
            )
        ]
    missing = [h for h in hooks if not calls[h]]
    if missing:
        return [
            Check(
                name,
                "fail",
                f"{', '.join(missing)} never called",
                "check the hook's argument names: they must be those of the hook spec",
            )
        ]
    return [Check(name, "pass", ", ".join(f"{h} x{calls[h]}" for h in hooks))]
