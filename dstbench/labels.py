"""Spec values as text for people: as a suite file would write them, never a Python repr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dstbench.contracts.spec import format_component

#: Keys :func:`dstbench.engine.spec.describe_spec` already shows in a run's label.
DESCRIBED = ("model", "dataset", "method", "criterion", "growth", "density", "seed")


def value_text(value: Any) -> str:
    """``0.1``, ``true``, ``mest[lam=0.1]``, ``[magnitude,snip]``: a spec value as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # 1.0 stays 1.0, as in the suite file
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(value_text(v) for v in value) + "]"
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return format_component(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}={value_text(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def varying_keys(specs: Iterable[Mapping[str, Any]], skip: Sequence[str] = DESCRIBED) -> list[str]:
    """Spec keys, outside ``skip``, that take more than one value among ``specs``."""
    seen: dict[str, set[str]] = {}
    order: list[str] = []
    for spec in specs:
        for key, value in spec.items():
            if key in skip or value is None:
                continue
            if key not in seen:
                seen[key] = set()
                order.append(key)
            seen[key].add(json.dumps(value, sort_keys=True, default=str))
    return [key for key in order if len(seen[key]) > 1]


def detail_text(spec: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``update_period=100 lr=0.05``: the values of ``keys`` that ``spec`` sets."""
    return " ".join(f"{k}={value_text(spec[k])}" for k in keys if spec.get(k) is not None)
