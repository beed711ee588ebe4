"""Where a result came from: versions, device, and the plugin behind every component."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any

import torch

from dstbench._version import __version__
from dstbench.contracts.components import KINDS
from dstbench.contracts.spec import RunSpec
from dstbench.plugins import LoadedPlugins

#: The component kind each spec key names (from the kinds table).
SPEC_KEY_KINDS: dict[str, str] = {key: kind.name for kind in KINDS for key in kind.spec_keys}


def device_name(device: torch.device) -> str:
    """A human-readable device name (GPU model, or the CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine() or 'unknown'})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def components_used(spec: RunSpec, plugins: LoadedPlugins) -> dict[str, dict[str, Any]]:
    """For each component in ``spec``: its name, the plugin/distribution/version behind it and
    its parameters' defaults."""
    used: dict[str, dict[str, Any]] = {}
    for key, ref in spec.components.items():
        kind = SPEC_KEY_KINDS[key.split("[", 1)[0]]
        info = ref.info or plugins.registry.table(kind)[ref.name]
        used[key] = {
            "name": info.name,
            "plugin": info.plugin,
            "distribution": info.distribution,
            "version": info.version,
            # a label shows every parameter that differs from these (see leaderboard.table)
            "defaults": {k: _jsonable(v) for k, v in info.params.items()},
        }
    return used


def provenance(
    spec: RunSpec, plugins: LoadedPlugins, device: torch.device, engine: str = "single"
) -> dict[str, Any]:
    """The provenance block of a result record (``engine``: the engine that trained it)."""
    return {
        "dstbench": __version__,
        # When the record was made (the run's end), in UTC: leaderboards date their header
        # from the records, so regenerating one never changes it.
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        "engine": engine,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "components": components_used(spec, plugins),
        "plugins": sorted(
            (
                {"name": r.name, "distribution": r.distribution, "version": r.version}
                for r in plugins.records.values()
                if r.status == "loaded"
            ),
            key=lambda r: str(r["name"]),
        ),
    }
