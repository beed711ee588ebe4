"""Analyses as components: what ``dstbench analyze`` lists and runs by name."""

from __future__ import annotations

from collections.abc import Mapping

from dstbench.plugins import get_plugins
from dstbench.registry import AnalysisInfo


def get_analyses() -> Mapping[str, AnalysisInfo]:
    """name -> analysis, for every analysis the loaded plugins registered (built-ins too)."""

    table = get_plugins().registry.analyses
    return {name: table[name] for name in table}  # type: ignore[misc]
