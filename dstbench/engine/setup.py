"""What a run trains on: its data, model, masks and optimizer, built from its spec.

Everything here happens once per run, before the first step, in a fixed order that decides
the run's random streams: the model is initialised right after ``torch.manual_seed(seed)``;
the data order, the masks and the compared criteria draw from generators seeded from the run's
seed (:func:`dstbench.sparse.seeds.derive_seed`), never from the global one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from dstbench.contracts.components import ComponentInfo, CriterionInfo, GrowthInfo
from dstbench.contracts.data import (
    DatasetContext,
    DatasetParts,
    Split,
    TensorSplit,
    resolve_data_root,
)
from dstbench.contracts.spec import ComponentRef, RunSpec
from dstbench.engine.data import Batches, carve_validation, make_batches
from dstbench.engine.flops import count_macs
from dstbench.engine.optim import MaskedSGD
from dstbench.errors import DstbenchError
from dstbench.sparse.densities import checked_layer_densities
from dstbench.sparse.masker import Masker, sparse_parameters
from dstbench.sparse.seeds import derive_seed


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def info_of(ref: ComponentRef | None) -> ComponentInfo:
    """The registry entry a spec's component resolved to (specs from :func:`build_spec`
    always carry it)."""
    if ref is None or ref.info is None:
        msg = "the spec's components are not resolved: build it with build_spec()"
        raise DstbenchError(msg)
    return ref.info


@dataclass(frozen=True)
class DSTComponents:
    """The resolved components of a DST run, with their parameters."""

    criterion: CriterionInfo
    criterion_params: Any
    growth: GrowthInfo
    growth_params: Any
    schedule: ComponentInfo
    schedule_params: Any
    #: (name, info, params) of every ``compare_criteria`` entry.
    compared: list[tuple[str, CriterionInfo, Any]]
    #: True when the masks are updated after the optimizer step (the paper's "before" order).
    update_after_step: bool

    @classmethod
    def of(cls, spec: RunSpec) -> DSTComponents | None:
        """The components of ``spec``, or None for a dense or static run."""
        if spec.method != "dst":
            return None
        assert spec.criterion and spec.growth and spec.schedule
        criterion = cast(CriterionInfo, info_of(spec.criterion))
        return cls(
            criterion=criterion,
            criterion_params=spec.criterion.params,
            growth=cast(GrowthInfo, info_of(spec.growth)),
            growth_params=spec.growth.params,
            schedule=info_of(spec.schedule),
            schedule_params=spec.schedule.params,
            compared=[
                (c.name, cast(CriterionInfo, info_of(c)), c.params)
                for c in spec.compare_criteria or ()
            ],
            update_after_step=spec.update_order == "paper" and criterion.paper_order == "before",
        )


@dataclass
class Setup:
    """What a run trains on: the model, its batches, and facts about the task."""

    model: nn.Module
    parts: DatasetParts
    train: Batches
    val: Batches | None
    test: Batches
    #: Binary task with one logit per sample (binary cross-entropy on logits).
    binary: bool
    #: Forward MACs per sample of every Linear/Conv weight.
    macs: dict[str, int]


def load_parts(
    spec: RunSpec, data_root: str | Path | None, download: bool
) -> tuple[DatasetParts, Split, Split | None]:
    """The dataset's parts, and the training and validation splits the spec asks for."""
    dataset = info_of(spec.dataset)
    context = DatasetContext(
        root=resolve_data_root(data_root), download=download, validation=spec.validation
    )
    parts = dataset.fn(context, **spec.dataset.params)
    if not isinstance(parts, DatasetParts):
        got = type(parts).__name__
        msg = f"dataset {dataset.name!r} returned {got}, expected DatasetParts"
        raise DstbenchError(msg)
    if parts.val is not None:
        # The dataset's own validation split, whatever the mode: a plugin that gives one
        # means it (the built-ins give one only under validation = "paper").
        if spec.validation == "split":
            parts.notes.setdefault("validation", "the dataset's own validation split")
        return parts, parts.train, parts.val
    train, val = carve_validation(parts.train, spec.val_fraction)
    return parts, train, val


def build_model(spec: RunSpec, parts: DatasetParts, device: torch.device) -> nn.Module:
    """The run's model, initialised from the run's seed, on ``device``."""
    torch.manual_seed(spec.seed)  # the model's initialisation
    model = info_of(spec.model).fn(parts.input_shape, parts.num_classes, **spec.model.params)
    return cast(nn.Module, model).to(device)


def sample_inputs(split: Split, n: int) -> torch.Tensor:
    """The first ``n`` inputs of ``split``, for the output-shape check and the MAC count.

    Read directly (no copy of the whole split to the device, no DataLoader workers); the
    global RNG is left untouched in case the dataset's transform draws from it.
    """
    if isinstance(split, TensorSplit):
        return split.x[:n]
    with torch.random.fork_rng(devices=[]):
        return torch.stack([split[i][0] for i in range(min(n, len(split)))])  # type: ignore[arg-type]


def check_output(
    model: nn.Module, sample: torch.Tensor, spec: RunSpec, parts: DatasetParts
) -> tuple[bool, dict[str, int]]:
    """Whether the task is binary with one logit, and the MACs per sample; the model's
    output shape is checked against the dataset.

    :raises DstbenchError: when the model's output does not fit the dataset.
    """
    with torch.no_grad():
        out = model.eval()(sample)
    model.train()
    binary = parts.num_classes == 2 and out.dim() == 2 and out.shape[1] == 1
    if out.dim() != 2 or (out.shape[1] != parts.num_classes and not binary):
        msg = (
            f"model {spec.model.name!r} returned output of shape {tuple(out.shape)} for "
            f"dataset {spec.dataset.name!r}; expected (batch, {parts.num_classes})"
        )
        raise DstbenchError(msg)
    return binary, count_macs(model, sample)


#: ``build(spec, parts, device) -> model``: how the run's model is built from its dataset.
ModelBuilder = Callable[[RunSpec, DatasetParts, torch.device], nn.Module]


def build_setup(
    spec: RunSpec,
    device: torch.device,
    data_root: str | Path | None,
    download: bool,
    build: ModelBuilder = build_model,
) -> Setup:
    """Data, model and batches of one run (``build`` makes the model: the sparse engine
    builds layers too large for a dense weight directly in their sparse form)."""
    parts, train, val = load_parts(spec, data_root, download)
    model = build(spec, parts, device)
    data_generator = torch.Generator().manual_seed(derive_seed(spec.seed, "data"))
    batch, workers = spec.batch_size, parts.num_workers

    def batches(split: Split, **options: Any) -> Batches:
        return make_batches(split, batch, device=device, num_workers=workers, **options)

    train_batches = batches(
        train, shuffle=True, generator=data_generator, transform=parts.train_transform
    )
    val_batches = batches(val, shuffle=False) if val is not None else None
    test_batches = batches(parts.test, shuffle=False)
    binary, macs = check_output(model, sample_inputs(train, 2).to(device), spec, parts)
    return Setup(model, parts, train_batches, val_batches, test_batches, binary, macs)


def build_masker(spec: RunSpec, model: nn.Module) -> Masker | None:
    """The run's masks (None for a dense run), drawn from the run's topology generator."""
    if spec.method == "dense":
        return None
    assert spec.dense_first is not None and spec.dense_last is not None
    layers = sparse_parameters(model, dense_first=spec.dense_first, dense_last=spec.dense_last)
    if not layers:
        msg = f"model {spec.model.name!r} has no Linear or Conv weight to sparsify"
        raise DstbenchError(msg)
    assert spec.distribution is not None
    densities = checked_layer_densities(
        info_of(spec.distribution),
        {name: tuple(w.shape) for name, w in layers},
        spec.density,
        **spec.distribution.params,
    )
    generator = torch.Generator().manual_seed(derive_seed(spec.seed, "topology"))
    return Masker(layers, densities, generator=generator, mask_init=spec.mask_init or "exact")  # type: ignore[arg-type]


def build_optimizer(spec: RunSpec, model: nn.Module, masker: Masker | None) -> MaskedSGD:
    """SGD with the masks fused into its step."""
    optimizer = MaskedSGD(
        model.parameters(),
        lr=spec.lr,
        momentum=spec.momentum,
        weight_decay=spec.weight_decay,
        nesterov=spec.nesterov and spec.momentum > 0,
    )
    if masker is not None:
        optimizer.set_masks(masker.float_masks())
    return optimizer


def lr_milestones(spec: RunSpec) -> list[int]:
    """Epochs after which the LR is multiplied by ``lr_gamma``."""
    return sorted({max(1, round(f * spec.epochs)) for f in spec.lr_milestones})
