"""``dstbench plugins``: every plugin, its version, its status and what it registered."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tabulate import tabulate

from dstbench.cli.commands import COMMANDS
from dstbench.plugins import get_plugins

NAME = "plugins"
HELP = COMMANDS["plugins"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json`` for machine-readable output, ``--components`` for every component's metadata."""
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--components", action="store_true", help="also list every component with its parameters"
    )


def run(args: argparse.Namespace) -> int:
    """Print the plugin table (or JSON)."""
    loaded = get_plugins()
    records = sorted(loaded.records.values(), key=lambda r: (not r.builtin, r.name))
    if args.json:
        payload: dict[str, Any] = {"plugins": [r.as_dict() for r in records]}
        if args.components:
            payload["components"] = loaded.registry.describe()
        print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    rows = []
    for r in records:
        registered = "; ".join(
            f"{kind}: {', '.join(names)}" for kind, names in r.registered.items() if names
        )
        status = r.status if r.status != "failed" else f"failed: {r.error}"
        rows.append([r.name, r.distribution or "-", r.version or "-", status, registered or "-"])
    print(tabulate(rows, headers=["plugin", "distribution", "version", "status", "registered"]))
    if args.components:
        for plural, table in loaded.registry.describe().items():
            if not table:
                continue
            print(f"\n{plural}:")
            comp_rows = [
                [
                    name,
                    meta["description"],
                    ", ".join(f"{k}={v}" for k, v in meta["params"].items()) or "-",
                    meta["plugin"],
                ]
                for name, meta in table.items()
            ]
            print(tabulate(comp_rows, headers=["name", "description", "params", "plugin"]))
    return 0
