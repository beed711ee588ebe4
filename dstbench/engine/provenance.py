"""Where a result came from: versions, device, and the plugin behind every component."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import torch

from dstbench._version import __version__
from dstbench.plugins import LoadedPlugins

#: Spec keys that name a component, with the component's kind.
COMPONENT_KEYS: dict[str, str] = {
    "model": "model",
    "dataset": "dataset",
    "criterion": "criterion",
    "growth": "growth",
    "distribution": "distribution",
    "schedule": "schedule",
}


def device_name(device: torch.device) -> str:
    """A human-readable device name (GPU model, or the CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine() or 'unknown'})"


def components_used(spec: Mapping[str, Any], plugins: LoadedPlugins) -> dict[str, dict[str, Any]]:
    """For each component in ``spec``: its name and the plugin/distribution/version behind it."""
    used: dict[str, dict[str, Any]] = {}
    entries = [(key, spec.get(key)) for key in COMPONENT_KEYS]
    entries += [
        (f"compare_criteria[{i}]", c) for i, c in enumerate(spec.get("compare_criteria") or [])
    ]
    for key, component in entries:
        if not component:
            continue
        kind = COMPONENT_KEYS.get(key, "criterion")
        info = plugins.registry.table(kind)[component["name"]]
        used[key] = {
            "name": info.name,
            "plugin": info.plugin,
            "distribution": info.distribution,
            "version": info.version,
        }
    return used


def provenance(
    spec: Mapping[str, Any], plugins: LoadedPlugins, device: torch.device
) -> dict[str, Any]:
    """The provenance block of a result record."""
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
