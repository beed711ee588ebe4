"""The values a record may hold: what a reader checks before it uses a record.

A record read from disk is checked against the record format, value by value: the spec's
keys have the types and ranges :data:`dstbench.engine.spec.FIELDS` gives them (``density:
"0.1"`` or ``seed: null`` are not a run's spec), accuracies lie in [0, 1], losses and other
numbers are finite, densities lie in (0, 1], and the optional blocks readers use
(``mask_movement``) have their shapes. A record that breaks one is reported by its readers and
never averaged in (:func:`dstbench.suite.store.record_problem`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dstbench.engine.spec import FIELDS, _check_scalar
from dstbench.errors import SpecError

#: Spec field types checked value by value (components are checked as components).
_SCALAR_TYPES = ("int", "float", "bool", "choice", "fractions")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def spec_values_problem(spec: Mapping[str, Any]) -> str | None:
    """Why a stored spec's values are not values a run spec can hold, or None.

    Keys a method does not use are stored as null and accepted as null.
    """
    for key, field in FIELDS.items():
        value = spec.get(key)
        if field.type.startswith("component:"):
            if value is not None and not (
                isinstance(value, Mapping) and isinstance(value.get("name"), str)
            ):
                return f"spec.{key} is {value!r}, not a component"
            continue
        if field.type not in _SCALAR_TYPES or value is None:
            continue
        try:
            _check_scalar(key, field, value)
        except SpecError as exc:
            return f"spec.{key}: {exc.detail}"
    if spec.get("seed") is None:
        return "spec.seed is null"
    if spec.get("density") is None:
        return "spec.density is null"
    return None


def _metric_problem(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, (str, list, dict)):
        return None
    if not _number(value):
        return f"metrics.{name} is {value!r}, not a number"
    if not math.isfinite(value):
        return f"metrics.{name} is {value!r}, not finite"
    if "accuracy" in name and not 0.0 <= value <= 1.0:
        return f"metrics.{name} is {value!r}, outside [0, 1]"
    if name.endswith("macs_per_sample") and value < 0:
        return f"metrics.{name} is {value!r}, negative"
    return None


def _density_problem(density: Any) -> str | None:
    if density is None:
        return None
    if not isinstance(density, Mapping):
        return f"density is {density!r}, not a mapping"
    for key in ("target", "achieved"):
        value = density.get(key)
        if value is None:
            continue
        if not _number(value) or not math.isfinite(value) or not 0.0 < value <= 1.0:
            return f"density.{key} is {value!r}, not in (0, 1]"
    return None


def _movement_problem(block: Any) -> str | None:
    if block is None:
        return None
    if not isinstance(block, Mapping):
        return f"mask_movement is {block!r}, not a mapping"
    value = block.get("retained")
    if value is not None and not (_number(value) and 0.0 <= value <= 1.0):
        return f"mask_movement.retained is {value!r}, not in [0, 1]"
    return None


def record_values_problem(record: Mapping[str, Any]) -> str | None:
    """Why ``record``'s values are out of the format's types or ranges, or None.

    :param record: a JSON object with a ``spec`` mapping (checked by the caller).
    """
    problem = spec_values_problem(record["spec"])
    if problem is not None:
        return problem
    metrics = record.get("metrics")
    if metrics is not None and not isinstance(metrics, Mapping):
        return f"metrics is {metrics!r}, not a mapping"
    for name, value in (metrics or {}).items():
        problem = _metric_problem(str(name), value)
        if problem is not None:
            return problem
    for entry in (metrics or {}).get("curve") or []:
        if not isinstance(entry, Mapping):
            return "metrics.curve holds something other than epochs"
        for name, value in entry.items():
            problem = _metric_problem(f"curve.{name}", value)
            if problem is not None:
                return problem
    problem = _density_problem(record.get("density"))
    if problem is not None:
        return problem
    return _movement_problem(record.get("mask_movement"))
