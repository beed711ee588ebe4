"""Component references: read ``name``, ``name[k=v,...]`` or ``{name = ..., k = v}`` and
resolve them against the registry: the one place that does it, for the run command line, the
suite loader, executors and engines.

Errors are :class:`~dstbench.errors.SpecError` objects that carry the key path they are about
(``exc.key``) apart from the message (``exc.detail``): callers that know where the key came
from (a line of a suite file) say so without parsing error text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dstbench.contracts.components import ComponentInfo
from dstbench.contracts.spec import ComponentRef
from dstbench.errors import DstbenchError, SpecError
from dstbench.registry import Registry

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
    """Read a component reference into its name and the parameters given (not resolved).

    :raises SpecError: when the reference is malformed (``exc.key == key``).
    """
    if isinstance(ref, ComponentRef):
        return ref.name, dict(ref.params)
    if isinstance(ref, Mapping):
        if "name" not in ref or not isinstance(ref["name"], str):
            raise SpecError(f"a table must have a string 'name', got {dict(ref)!r}", key=key)
        table_params = {k: v for k, v in ref.items() if k not in ("name", "params")}
        nested = ref.get("params") or {}
        if not isinstance(nested, Mapping):
            msg = f"'params' must be a table of parameters, got {nested!r}"
            raise SpecError(msg, key=key)
        table_params.update(nested)
        return ref["name"].lower(), table_params
    if not isinstance(ref, str):
        msg = f"expected a component name such as 'name' or 'name[k=v]', got {ref!r}"
        raise SpecError(msg, key=key)
    match = _REF_RE.match(ref)
    if not match:
        msg = f"cannot read component reference {ref!r}; expected 'name' or 'name[k=v,...]'"
        raise SpecError(msg, key=key)
    name, inner = match.group(1).lower(), match.group(2)
    params: dict[str, Any] = {}
    for part in _split_top_level(inner or ""):
        if "=" not in part:
            msg = f"parameter {part.strip()!r} in {ref!r} needs the form key=value"
            raise SpecError(msg, key=key)
        k, v = part.split("=", 1)
        params[k.strip()] = parse_value(v)
    return name, params


def lookup(kind: str, name: str, registry: Registry, *, key: str) -> ComponentInfo:
    """The registry entry of component ``name`` of ``kind``.

    :raises SpecError: naming ``key`` and the registered choices.
    """
    try:
        return registry.table(kind)[name]
    except DstbenchError as exc:
        raise SpecError(str(exc), key=key) from None


def resolve_component(
    ref: Any, kind: str, registry: Registry, *, key: str, only_given: bool = False
) -> ComponentRef:
    """Read ``ref`` and resolve it: the registry entry and every parameter (defaults filled in,
    values coerced to the declared types).

    :param key: the key path the reference was found at (carried by errors).
    :param only_given: keep only the parameters ``ref`` gives (for matching, e.g. a suite's
        ``exclude`` entries), still validated.
    :raises SpecError: when the reference is malformed, the name unknown or a parameter wrong.
    """
    name, params = parse_component(ref, key)
    info = lookup(kind, name, registry, key=key)
    try:
        resolved = info.resolve_params(params)
    except DstbenchError as exc:
        raise SpecError(str(exc), key=key) from None
    if only_given:
        resolved = {p: resolved[p] for p in params}
    return ComponentRef(name, resolved, info)
