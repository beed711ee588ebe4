"""The built-in ``sparse`` engine: DST whose cost falls with density.

Each run is the single engine's run (:func:`dstbench.engine.single.train_run`: the same
setup, seeded streams, loop, checkpoints and record) with one change of layout: after the model
and its masks are built, every sparsified ``nn.Linear`` is replaced by a
:class:`~dstbench.sparsetrain.layer.SparseLinear` holding only its active weights, and the
masks by a :class:`~dstbench.sparsetrain.masker.SparseMasker`. The optimizer (the same SGD)
then steps on the values and their momentum only; biases, dense layers, normalisation and
convolutions (masked-dense, as in the single engine) are untouched. The record says which
layers ran sparse and which kernels ran them (``extra.sparse_engine``).

What the engine cannot run exactly it hands to the single engine, one line saying why
(:func:`unsupported`): the record's ``provenance.engine`` then says ``single``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from dstbench.contracts.components import CriterionInfo, GrowthInfo
from dstbench.contracts.data import DatasetParts
from dstbench.contracts.execution import ExecutionOptions, RunRequest
from dstbench.contracts.record import RunRecord
from dstbench.contracts.spec import RunSpec
from dstbench.engine.setup import (
    Setup,
    build_masker,
    build_model,
    build_setup,
    info_of,
    resolve_device,
)
from dstbench.engine.single import SingleEngine, epoch_progress, prepare_masked, train_run
from dstbench.engine.spec import build_spec
from dstbench.plugins import LoadedPlugins
from dstbench.sparse.masker import Masker
from dstbench.sparsetrain.large import DENSE_POSITIONS, build_large, largest_sparse_linear
from dstbench.sparsetrain.layer import SparseLinear
from dstbench.sparsetrain.masker import AnyLayer, CsrLayer, SparseMasker

ENGINE_NAME = "sparse"


def unsupported(spec: RunSpec) -> str | None:
    """Why the sparse engine cannot train ``spec`` exactly as the single engine would (None
    when it can)."""
    if spec.method == "dense":
        return "a dense run has no sparse layer"
    if spec.jaccard_at_init or spec.compare_criteria:
        return "overlap analyses (compare_criteria) score every criterion on dense tensors"
    if spec.method != "dst":
        return None
    if not spec.reset_momentum:
        return (
            "reset_momentum = false keeps the momentum of inactive weights, which the sparse "
            "engine does not store"
        )
    criterion = info_of(spec.criterion)
    growth = info_of(spec.growth)
    for info in (criterion, growth):
        assert isinstance(info, (CriterionInfo, GrowthInfo))
        if info.needs_momentum:
            return (
                f"{info.kind} {info.name!r} reads the momentum of inactive weights, which the "
                "sparse engine does not store"
            )
        if not info.exact:
            return f"{info.kind} {info.name!r} changes layer sizes (exact=False)"
    return None


def _owner(model: nn.Module, weight: torch.Tensor) -> tuple[nn.Module, str, nn.Module] | None:
    """(parent, attribute, module) of the one plain ``nn.Linear`` whose weight is ``weight``."""
    owners = [
        (name, module)
        for name, module in model.named_modules()
        if getattr(module, "weight", None) is weight
    ]
    if len(owners) != 1 or type(owners[0][1]) is not nn.Linear:
        return None  # a conv, a Linear subclass with its own forward, or a shared weight
    name, module = owners[0]
    parent_name, _, attribute = name.rpartition(".")
    return model.get_submodule(parent_name), attribute, module


def to_sparse_layout(
    model: nn.Module, masker: Masker | None
) -> tuple[SparseMasker | None, dict[str, Any]]:
    """Swap every sparsified plain ``nn.Linear`` of ``model`` for a :class:`SparseLinear` of
    its active weights (in place), and wrap the masks; other sparse layers (convolutions,
    shared weights, Linear subclasses) stay masked-dense. Returns the masks and the record's
    ``sparse_engine`` block."""
    if masker is None:
        return None, {}
    layers: list[AnyLayer] = []
    dense_layers = []
    for layer in masker.layers:
        found = _owner(model, layer.weight)
        if found is None:
            layers.append(layer)
            dense_layers.append(layer)
            continue
        parent, attribute, linear = found
        assert isinstance(linear, nn.Linear)
        sparse = SparseLinear.from_dense(linear, layer.mask)
        setattr(parent, attribute, sparse)
        layers.append(CsrLayer(layer.name, sparse, layer.target))
    masker.layers = dense_layers
    sparse_masker = SparseMasker(masker, layers)
    return sparse_masker, _notes(sparse_masker)


def prepare_sparse(
    spec: RunSpec,
    device: torch.device,
    data_root: str | Path | None,
    download: bool,
    plugins: LoadedPlugins,
) -> tuple[Setup, SparseMasker | None, dict[str, Any]]:
    """The sparse engine's run (the single engine's ``prepare``): the dense model and masks,
    then :func:`to_sparse_layout`; or, for a model with a Linear layer too large to hold
    densely, the model built sparse directly (:mod:`dstbench.sparsetrain.large`)."""
    built: dict[str, SparseMasker] = {}

    def build(spec: RunSpec, parts: DatasetParts, device: torch.device) -> nn.Module:
        try:  # shapes only: no memory, no random numbers drawn
            with torch.device("meta"):
                meta_model = build_model(spec, parts, torch.device("meta"))
        except Exception:  # a model that cannot be built without data: build it as usual
            return build_model(spec, parts, device)
        if largest_sparse_linear(spec, meta_model) <= DENSE_POSITIONS:
            return build_model(spec, parts, device)
        model, built["masker"] = build_large(spec, meta_model, device)
        return model

    setup = build_setup(spec, device, data_root, download, build=build)
    if "masker" in built:
        masker = built["masker"]
        return setup, masker, _notes(masker, built_sparse=True)
    return (setup, *to_sparse_layout(setup.model, build_masker(spec, setup.model)))


def _notes(masker: SparseMasker, built_sparse: bool = False) -> dict[str, Any]:
    """The record's ``sparse_engine`` block."""
    kernels = sorted({layer.module.kernels.name for layer in masker.csr_layers})
    block: dict[str, Any] = {
        "sparse_layers": [layer.name for layer in masker.csr_layers],
        "masked_dense_layers": [layer.name for layer in masker.dense.layers],
        "kernels": kernels[0] if len(kernels) == 1 else kernels,
    }
    if built_sparse:
        block["built_sparse"] = True  # never dense: initialised as documented in large.py
    return {"sparse_engine": block}


class SparseEngine(SingleEngine):
    """One run at a time (the single engine's groups), with Linear layers held as values and
    positions."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def run(
        self, requests: Sequence[RunRequest], options: ExecutionOptions, plugins: LoadedPlugins
    ) -> Iterator[RunRecord]:
        """Train each request and yield its record."""
        for request in requests:
            spec = build_spec(request.spec, plugins.registry)
            why = unsupported(spec)
            if why is not None and spec.method != "dense":
                # A dense run is the same on every engine: nothing to say.
                (self.stream or sys.stderr).write(
                    f"dstbench: sparse engine: run {spec.run_id}: {why}; trained by the "
                    "single engine\n"
                )
            record = train_run(
                spec,
                plugins=plugins,
                device=resolve_device(request.device),
                data_root=options.data_root,
                download=options.download,
                artifact_dir=request.artifact_dir,
                progress=epoch_progress(request),
                checkpoint=request.checkpoint,
                checkpoint_every=options.checkpoint_every,
                engine="single" if why else ENGINE_NAME,
                prepare=prepare_masked if why else prepare_sparse,
            )
            if why is not None:
                fallback = {"requested": ENGINE_NAME, "reason": why}
                record = replace(record, extra={**record.extra, "engine_fallback": fallback})
            yield record
