"""Analyses as components: what ``dstbench analyze`` lists and runs by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dstbench.registry import ComponentInfo, signature_params


@dataclass(frozen=True, kw_only=True)
class AnalysisInfo(ComponentInfo):
    """An analysis: ``fn(results, *, stem, **params) -> Report``."""

    #: Parameters given on the command line before the directories (``sweep KEY DIR``).
    positional: tuple[str, ...] = ()

    def _extra_metadata(self) -> dict[str, Any]:
        return {"positional": list(self.positional)}


def get_analyses() -> Mapping[str, AnalysisInfo]:
    """name -> analysis, for every registered analysis."""
    from dstbench.builtin import analyses

    found: dict[str, AnalysisInfo] = {}

    def register(name: str, fn: Callable[..., Any], **options: Any) -> None:
        found[name] = AnalysisInfo(
            kind="analysis",
            name=name,
            fn=fn,
            description=(fn.__doc__ or "").strip().splitlines()[0],
            params=signature_params(fn, ("results", "stem")),
            plugin="builtin-analyses",
            distribution="dstbench",
            **options,
        )

    analyses.dstbench_register_analyses(register)
    return dict(sorted(found.items()))
