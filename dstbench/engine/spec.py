"""Run specifications: the keys, their validation and defaults, and the paper's fidelity.

:func:`build_spec` is the one place where a :class:`~dstbench.contracts.spec.RunSpec` is made:
it checks every key and value of :data:`FIELDS`, fills defaults (the dataset's recommended
values first, then the global ones, which are the paper's) and resolves component names and
their parameters against the registry (:mod:`dstbench.resolve`). The run's identity is a hash
of the spec's JSON form (``RunSpec.run_id``), so the same run has the same id in any suite.
Keys that do not change the science (``data_root``, ``device``, ``download``, the engine) are
not part of the spec at all; they are execution options.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dstbench.contracts.spec import ComponentRef, RunSpec
from dstbench.errors import DstbenchError, SpecError, choices_text, did_you_mean
from dstbench.registry import Registry
from dstbench.resolve import parse_component, resolve_component


@dataclass(frozen=True)
class FieldSpec:
    """One run-spec key: its type, default, constraint and help text."""

    type: str  # int | float | bool | choice | component:<kind> | fractions | components:<kind>
    default: Any
    help: str
    check: Callable[[Any], bool] | None = None
    expected: str = ""
    choices: tuple[str, ...] = ()


def _between(
    lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        return bool(above and below)

    return check


#: Every key a run spec may hold. Defaults are the paper's (MLP/CIFAR-10 column) unless the
#: dataset registers better-suited defaults.
FIELDS: dict[str, FieldSpec] = {
    "model": FieldSpec("component:model", None, "model name (required)"),
    "dataset": FieldSpec("component:dataset", None, "dataset name (required)"),
    "method": FieldSpec(
        "choice",
        "dst",
        "dst, static (fixed initial mask) or dense",
        choices=("dst", "static", "dense"),
    ),
    "criterion": FieldSpec("component:criterion", "magnitude", "pruning criterion"),
    "growth": FieldSpec("component:growth", "gradient", "growth method"),
    "density": FieldSpec(
        "float",
        0.1,
        "global density of the sparse layers",
        _between(1e-9, 1),
        "in [1e-9, 1]",
    ),
    "distribution": FieldSpec("component:distribution", "erk", "layer-wise density distribution"),
    "schedule": FieldSpec("component:schedule", "cosine", "prune-fraction schedule"),
    "prune_fraction": FieldSpec(
        "float", 0.5, "initial prune fraction ζ₀", _between(0, 1, lo_open=True), "in (0, 1]"
    ),
    "update_period": FieldSpec(
        "int",
        800,
        "iterations between topology updates (ΔT)",
        lambda v: 1 <= v <= 10**9,
        "in [1, 10^9]",
    ),
    "seed": FieldSpec(
        "int", 0, "random seed", lambda v: 0 <= v < 2**63, "in [0, 2^63) (torch's seed range)"
    ),
    "epochs": FieldSpec("int", 100, "training epochs", lambda v: 1 <= v <= 10**6, "in [1, 10^6]"),
    "batch_size": FieldSpec(
        "int", 128, "mini-batch size", lambda v: 1 <= v <= 10**7, "in [1, 10^7]"
    ),
    "lr": FieldSpec("float", 0.01, "learning rate", lambda v: v > 0, "> 0"),
    "momentum": FieldSpec("float", 0.9, "SGD momentum", _between(0, 1, hi_open=True), "in [0, 1)"),
    "nesterov": FieldSpec("bool", True, "Nesterov momentum"),
    "weight_decay": FieldSpec(
        "float", 5e-4, "L2 weight decay (all parameters)", lambda v: v >= 0, ">= 0"
    ),
    "lr_milestones": FieldSpec(
        "fractions",
        [0.5, 0.75],
        "fractions of training at which the LR is multiplied by lr_gamma",
    ),
    "lr_gamma": FieldSpec(
        "float", 0.1, "LR decay factor", _between(0, 1, lo_open=True), "in (0, 1]"
    ),
    "val_fraction": FieldSpec(
        "float",
        0.1,
        "fraction of the training set held out for validation",
        _between(0, 1, hi_open=True),
        "in [0, 1)",
    ),
    "validation": FieldSpec(
        "choice",
        "split",
        "split: validate on a held-out part of the training set; "
        "paper: the paper's per-dataset choice",
        choices=("split", "paper"),
    ),
    "dense_first": FieldSpec("bool", False, "keep the first sparsifiable layer dense"),
    "dense_last": FieldSpec("bool", False, "keep the last sparsifiable layer dense"),
    "mask_init": FieldSpec(
        "choice",
        "exact",
        "exact per-layer counts, or Bernoulli sampling (paper)",
        choices=("exact", "bernoulli"),
    ),
    "update_order": FieldSpec(
        "choice",
        "uniform",
        "uniform: prune/grow before the optimizer step for every criterion; "
        "paper: each criterion's order in the paper's code",
        choices=("uniform", "paper"),
    ),
    "reset_momentum": FieldSpec(
        "bool", True, "zero the momentum of newly grown weights (paper: false)"
    ),
    "compare_criteria": FieldSpec(
        "components:criterion",
        [],
        "criteria evaluated on the same state at every update, "
        "for the pruned-set overlap (Jaccard) analysis",
    ),
    "jaccard_at_init": FieldSpec(
        "bool",
        False,
        "no training: one pruning step by every compare_criteria criterion on the untrained "
        "weights and the first batch's gradient, at ζ = prune_fraction (the paper's Fig. 6a)",
    ),
}


#: What ``fidelity = "paper"`` (CLI ``--paper-faithful``) sets: the paper code's behaviour.
PAPER_FIDELITY: dict[str, Any] = {
    "mask_init": "bernoulli",
    "update_order": "paper",
    "reset_momentum": False,
    "validation": "paper",
}

#: Growth methods the paper's code implements differently, swapped in by ``fidelity = "paper"``:
#: its random growth activates each inactive position with probability n/inactive.
PAPER_GROWTH: dict[str, str] = {"random": "random_bernoulli"}
#: Criteria the paper's training runs implement differently: its SET keeps only the k−1 most
#: negative weights. (Its overlap analysis used the corrected SET, so ``compare_criteria``
#: keeps ``set``.)
PAPER_CRITERIA: dict[str, str] = {"set": "set_paper"}


def _paper_variant(ref: Any, key: str, variants: Mapping[str, str]) -> Any:
    name, params = parse_component(ref, key)
    return variants[name] if name in variants and not params else ref


def paper_growth(ref: Any) -> Any:
    """The growth reference the paper's code would have run for ``ref`` (same if no variant)."""
    return _paper_variant(ref, "growth", PAPER_GROWTH)


def paper_criterion(ref: Any) -> Any:
    """The criterion the paper's training code would have run for ``ref`` (``set_paper`` for
    ``set``; the same reference otherwise)."""
    return _paper_variant(ref, "criterion", PAPER_CRITERIA)


def apply_paper_fidelity(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with the paper code's behaviour filled in wherever the user did not choose."""
    result = {**{k: v for k, v in PAPER_FIDELITY.items() if raw.get(k) is None}, **raw}
    result["growth"] = paper_growth(raw.get("growth") or FIELDS["growth"].default)
    result["criterion"] = paper_criterion(raw.get("criterion") or FIELDS["criterion"].default)
    return result


def paper_substitutions(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Where a normalized spec runs the paper code's behaviour instead of dstbench's default:
    key -> ``{"default": ..., "paper": ...}`` (the record's ``fidelity`` block)."""
    found: dict[str, dict[str, Any]] = {}
    for key, paper in PAPER_FIDELITY.items():
        if spec.get(key) is not None and spec[key] == paper and FIELDS[key].default != paper:
            found[key] = {"default": FIELDS[key].default, "paper": paper}
    for key, variants in (("growth", PAPER_GROWTH), ("criterion", PAPER_CRITERIA)):
        component = spec.get(key)
        for default, paper in variants.items():
            if component and component["name"] == paper:
                found[key] = {"default": default, "paper": paper}
    return found


#: Keys irrelevant to each method; normalized to None so that identical runs share identity.
_UNUSED: dict[str, tuple[str, ...]] = {
    "dense": (
        "criterion",
        "growth",
        "distribution",
        "schedule",
        "prune_fraction",
        "update_period",
        "dense_first",
        "dense_last",
        "mask_init",
        "update_order",
        "reset_momentum",
        "compare_criteria",
        "jaccard_at_init",
    ),
    "static": (
        "criterion",
        "growth",
        "schedule",
        "prune_fraction",
        "update_period",
        "update_order",
        "reset_momentum",
        "compare_criteria",
        "jaccard_at_init",
    ),
    "dst": (),
}

REQUIRED = ("model", "dataset")


def _check_scalar(key: str, field: FieldSpec, value: Any) -> Any:
    kind = field.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"expected true or false, got {value!r}", key=key)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"expected an integer, got {value!r}", key=key)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"expected a number, got {value!r}", key=key)
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got {value!r}", key=key)
    elif kind == "choice":
        if value not in field.choices:
            raise SpecError(
                f"expected one of {choices_text(field.choices)}, got {value!r}"
                f"{did_you_mean(str(value), field.choices)}",
                key=key,
            )
    elif kind == "fractions":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in value
        ):
            raise SpecError(f"expected a list of numbers in (0, 1), got {value!r}", key=key)
        value = sorted(float(v) for v in value)
    if field.check is not None and not field.check(value):
        raise SpecError(f"expected a value {field.expected}, got {value!r}", key=key)
    return value


def check_keys(
    raw: Mapping[str, Any], allowed: Mapping[str, Any] = FIELDS, where: str = ""
) -> None:
    """Reject unknown keys with a did-you-mean hint."""
    for key in raw:
        if key not in allowed:
            msg = (
                f"{where}unknown key {key!r}{did_you_mean(key, allowed)}; "
                f"valid keys: {', '.join(sorted(allowed))}"
            )
            raise SpecError(msg)


def check_model(model: ComponentRef) -> None:
    """Refuse model parameters no dataset could make work (the model's registered ``check``).

    :raises SpecError: with key ``model``.
    """
    check = getattr(model.info, "check", None)
    if check is None:
        return
    try:
        check(**model.params)
    except DstbenchError as exc:
        raise SpecError(str(exc), key="model") from None


def build_spec(raw: Mapping[str, Any], registry: Registry) -> RunSpec:
    """Validate ``raw`` and build the run's :class:`RunSpec` (every key, components resolved
    against ``registry`` and carried in the spec). The one place where specs are made.

    :param raw: spec keys as a user writes them (a suite cell, command-line flags), or a
        spec's JSON form (a job file): both normalize to the same spec.
    :raises SpecError: naming the key (``exc.key``) and what was expected.
    """
    check_keys(raw)
    for key in REQUIRED:
        if raw.get(key) is None:
            msg = f"required; registered: {choices_text(registry.table(key))}"
            raise SpecError(msg, key=key)
    dataset = resolve_component(raw["dataset"], "dataset", registry, key="dataset")
    model = resolve_component(raw["model"], "model", registry, key="model")
    check_model(model)
    dataset_defaults = getattr(dataset.info, "defaults", {})
    method = _check_scalar("method", FIELDS["method"], raw.get("method", "dst"))
    unused = _UNUSED[method]
    values: dict[str, Any] = {}
    for key, field in FIELDS.items():
        if key in unused:
            values[key] = None
            continue
        value = raw.get(key)
        if value is None:
            value = dataset_defaults.get(key, field.default)
        if key == "dataset":
            values[key] = dataset
        elif key == "model":
            values[key] = model
        elif field.type.startswith("component:"):
            kind = field.type.split(":", 1)[1]
            values[key] = resolve_component(value, kind, registry, key=key)
        elif field.type.startswith("components:"):
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"expected a list of names, got {value!r}", key=key)
            kind = field.type.split(":", 1)[1]
            values[key] = tuple(resolve_component(v, kind, registry, key=key) for v in value)
        else:
            values[key] = _check_scalar(key, field, value)
    if method == "dense":
        values["density"] = 1.0
    return RunSpec(**values)


def normalize_spec(raw: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """The JSON form of :func:`build_spec` (what records, suites and job files hold).

    :raises SpecError: naming the key and what was expected.
    """
    return build_spec(raw, registry).to_json()
