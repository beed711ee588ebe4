"""Run specifications: validation, defaults, normalization and identity.

A run spec is a flat mapping of the keys in :data:`FIELDS`. :func:`normalize_spec` checks
every key and value, fills defaults (the dataset's recommended values first, then the global
ones, which are the paper's), resolves component names and their parameters against the
registry, and returns the *normalized* spec: a JSON-ready dict with every key present.
Components appear as ``{"name": ..., "params": {...all parameters...}}``. The run's identity
is a hash of the normalized spec (:func:`spec_hash`), so the same run has the same id in any
suite. Keys that do not change the science (``data_root``, ``device``, ``download``) are not
part of the spec at all; they are execution options.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dstbench.errors import DstbenchError, SpecError, choices_text, did_you_mean
from dstbench.registry import Registry


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

#: Keys added after run ids were first published: left out of the normalized spec while at
#: their default, so that the ids of every run that does not use them stay the same.
OMITTED_AT_DEFAULT: tuple[str, ...] = ("jaccard_at_init",)

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

_REF_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_\-]*)\s*(?:\[(.*)\])?\s*$", re.DOTALL)


def parse_value(text: str) -> Any:
    """Parse a parameter value written in a component reference: bool, int, float, list, str."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text.strip("'\"")


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def parse_component(ref: Any, key: str) -> tuple[str, dict[str, Any]]:
    """Read a component reference: ``"name"``, ``"name[k=v,...]"`` or ``{name=..., k=v}``.

    :raises SpecError: when the reference is malformed.
    """
    if isinstance(ref, Mapping):
        if "name" not in ref or not isinstance(ref["name"], str):
            msg = f"{key}: a table must have a string 'name', got {dict(ref)!r}"
            raise SpecError(msg)
        table_params = {k: v for k, v in ref.items() if k not in ("name", "params")}
        nested = ref.get("params") or {}
        if not isinstance(nested, Mapping):
            msg = f"{key}: 'params' must be a table of parameters, got {nested!r}"
            raise SpecError(msg)
        table_params.update(nested)
        return ref["name"].lower(), table_params
    if not isinstance(ref, str):
        msg = f"{key}: expected a component name such as 'name' or 'name[k=v]', got {ref!r}"
        raise SpecError(msg)
    match = _REF_RE.match(ref)
    if not match:
        msg = f"{key}: cannot read component reference {ref!r}; expected 'name' or 'name[k=v,...]'"
        raise SpecError(msg)
    name, inner = match.group(1).lower(), match.group(2)
    params: dict[str, Any] = {}
    for part in _split_top_level(inner or ""):
        if "=" not in part:
            msg = f"{key}: parameter {part.strip()!r} in {ref!r} needs the form key=value"
            raise SpecError(msg)
        k, v = part.split("=", 1)
        params[k.strip()] = parse_value(v)
    return name, params


def format_component(component: Mapping[str, Any] | None) -> str:
    """``name`` or ``name[k=v,...]`` with every parameter (``-`` for no component)."""
    if component is None:
        return "-"
    params = component.get("params", {})
    if not params:
        return str(component["name"])
    inner = ",".join(
        f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in sorted(params.items())
    )
    return f"{component['name']}[{inner}]"


def _check_scalar(key: str, field: FieldSpec, value: Any) -> Any:
    kind = field.type
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{key}: expected an integer, got {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(f"{key}: expected a finite number, got {value!r}")
    elif kind == "choice":
        if value not in field.choices:
            raise SpecError(
                f"{key}: expected one of {choices_text(field.choices)}, got {value!r}"
                f"{did_you_mean(str(value), field.choices)}"
            )
    elif kind == "fractions":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in value
        ):
            raise SpecError(f"{key}: expected a list of numbers in (0, 1), got {value!r}")
        value = sorted(float(v) for v in value)
    if field.check is not None and not field.check(value):
        raise SpecError(f"{key}: expected a value {field.expected}, got {value!r}")
    return value


def _resolve_component(key: str, kind: str, ref: Any, registry: Registry) -> dict[str, Any]:
    name, params = parse_component(ref, key)
    try:
        info = registry.table(kind)[name]
        resolved = info.resolve_params(params)
    except DstbenchError as exc:
        raise SpecError(f"{key}: {exc}") from None
    return {"name": name, "params": resolved}


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


def normalize_spec(raw: Mapping[str, Any], registry: Registry) -> dict[str, Any]:
    """Validate ``raw`` and return the normalized spec (every key, components resolved).

    :raises SpecError: naming the key and what was expected.
    """
    check_keys(raw)
    for key in REQUIRED:
        if raw.get(key) is None:
            raise SpecError(f"{key}: required; registered: {choices_text(registry.table(key))}")
    dataset = _resolve_component("dataset", "dataset", raw["dataset"], registry)
    dataset_defaults = getattr(registry.datasets[dataset["name"]], "defaults", {})
    method = _check_scalar("method", FIELDS["method"], raw.get("method", "dst"))
    unused = _UNUSED[method]
    spec: dict[str, Any] = {}
    for key, field in FIELDS.items():
        if key in unused:
            spec[key] = None
            continue
        value = raw.get(key)
        if value is None:
            value = dataset_defaults.get(key, field.default)
        if key == "dataset":
            spec[key] = dataset
        elif field.type.startswith("component:"):
            spec[key] = _resolve_component(key, field.type.split(":", 1)[1], value, registry)
        elif field.type.startswith("components:"):
            if not isinstance(value, (list, tuple)):
                raise SpecError(f"{key}: expected a list of names, got {value!r}")
            kind = field.type.split(":", 1)[1]
            spec[key] = [_resolve_component(key, kind, v, registry) for v in value]
        else:
            spec[key] = _check_scalar(key, field, value)
    if method == "dense":
        spec["density"] = 1.0
    for key in OMITTED_AT_DEFAULT:
        if spec.get(key) in (None, FIELDS[key].default):
            del spec[key]
    return spec


def spec_hash(spec: Mapping[str, Any], length: int = 16) -> str:
    """The run id: a hash of the canonical JSON of a normalized spec."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def describe_spec(spec: Mapping[str, Any]) -> str:
    """A short human label: ``magnitude/gradient mlp/digits d=0.1 seed=0``."""
    setup = f"{spec['model']['name']}/{spec['dataset']['name']}"
    if spec["method"] == "dense":
        return f"dense {setup} seed={spec['seed']}"
    if spec["method"] == "static":
        return f"static {setup} d={spec['density']:g} seed={spec['seed']}"
    method = f"{format_component(spec['criterion'])}/{format_component(spec['growth'])}"
    return f"{method} {setup} d={spec['density']:g} seed={spec['seed']}"
