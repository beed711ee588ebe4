"""The component registry: what plugins registered, by kind and name.

What a component *is* (its info, the kinds, the ``register`` callable plugins receive) is part
of the plugin contract, :mod:`dstbench.contracts.components`; this module holds the tables
built from what the loaded plugins registered.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dstbench.contracts.components import (
    KIND_BY_NAME,
    KIND_PLURALS,
    KINDS,
    AnalysisInfo,
    ComponentInfo,
    ComponentKind,
    CriterionInfo,
    DatasetInfo,
    GrowthInfo,
    Register,
    coerce_param,
    signature_params,
)
from dstbench.errors import PluginError, UnknownComponentError, choices_text, did_you_mean

__all__ = [
    "KINDS",
    "KIND_BY_NAME",
    "KIND_PLURALS",
    "AnalysisInfo",
    "ComponentInfo",
    "ComponentKind",
    "ComponentTable",
    "CriterionInfo",
    "DatasetInfo",
    "GrowthInfo",
    "Register",
    "Registry",
    "build_registry",
    "coerce_param",
    "signature_params",
]


class ComponentTable(Mapping[str, ComponentInfo]):
    """Read-only name -> info mapping for one kind, with helpful lookups."""

    def __init__(self, kind: str, items: dict[str, ComponentInfo]) -> None:
        self.kind = kind
        self._items = dict(sorted(items.items()))

    def __getitem__(self, name: str) -> ComponentInfo:
        try:
            return self._items[name]
        except KeyError:
            plural = KIND_PLURALS[self.kind]
            msg = (
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                f"registered {plural}: {choices_text(self._items)}"
            )
            raise UnknownComponentError(msg) from None

    def __contains__(self, name: object) -> bool:
        # Mapping's default goes through __getitem__, whose error is not a KeyError.
        return name in self._items

    def get(self, name: str, default: Any = None) -> Any:
        """The info registered as ``name``, or ``default`` (no error for an unknown name)."""
        return self._items.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def describe(self) -> dict[str, dict[str, Any]]:
        """name -> JSON-ready metadata, sorted by name."""
        return {name: info.metadata() for name, info in self._items.items()}


@dataclass(frozen=True)
class Registry:
    """Everything registered by the loaded plugins, one :class:`ComponentTable` per kind."""

    criteria: ComponentTable
    growth: ComponentTable
    schedules: ComponentTable
    distributions: ComponentTable
    models: ComponentTable
    datasets: ComponentTable
    engines: ComponentTable
    executors: ComponentTable
    analyses: ComponentTable

    def table(self, kind: str) -> ComponentTable:
        """The table for ``kind`` (``"criterion"``, ``"growth"``, ...)."""
        table: ComponentTable = getattr(self, KIND_PLURALS[kind])
        return table

    def describe(self) -> dict[str, dict[str, dict[str, Any]]]:
        """kind (plural) -> name -> metadata, for ``dstbench plugins --json`` and provenance."""
        return {kind.plural: self.table(kind.name).describe() for kind in KINDS}


def build_registry(infos: list[ComponentInfo]) -> Registry:
    """Assemble a :class:`Registry`; two components of one kind with one name is an error.

    :raises PluginError: naming both plugins on a collision.
    """
    tables: dict[str, dict[str, ComponentInfo]] = {kind.name: {} for kind in KINDS}
    for info in infos:
        table = tables[info.kind]
        if info.name in table:
            first = table[info.name]
            msg = (
                f"{info.kind} {info.name!r} is registered by both plugin {first.plugin!r} and "
                f"plugin {info.plugin!r}; block one with DSTBENCH_DISABLE_PLUGINS="
                f"{info.plugin}"
            )
            raise PluginError(msg)
        table[info.name] = info
    return Registry(**{KIND_PLURALS[k]: ComponentTable(k, v) for k, v in tables.items()})
