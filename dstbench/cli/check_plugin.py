"""``dstbench check-plugin``: run the conformance kit on a plugin, a component or a module."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import sys
from typing import Any

from dstbench.cli.commands import COMMANDS
from dstbench.conformance import PluginReport, check_plugin, format_report
from dstbench.conformance.plugin import COMPONENT_SECONDS, check_module
from dstbench.errors import DstbenchError, PluginError, choices_text, did_you_mean
from dstbench.plugins import DEFAULT_PLUGINS, ENTRY_POINT_GROUP, MODULES_ENV, load_plugins
from dstbench.registry import KIND_PLURALS

NAME = "check-plugin"
HELP = COMMANDS["check-plugin"].help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Targets, what to print, and where the checks run."""
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="NAME",
        help="a plugin as `dstbench plugins` lists it (e.g. builtin-criteria), a component name "
        "(e.g. magnitude: checks only that component), or a plugin module that is not "
        "installed, as path/to/plugin.py",
    )
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="MODULE",
        help="check an importable module that is not installed as a plugin (repeatable)",
    )
    parser.add_argument("--all", action="store_true", help="check every installed plugin")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every check")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument(
        "--no-train",
        dest="train",
        action="store_false",
        help="skip the short training runs (criteria, growth methods, lifecycle hooks)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument(
        "--time-limit",
        type=_seconds,
        default=COMPONENT_SECONDS,
        metavar="SECONDS",
        help="fail a component whose checks take longer (default: %(default)g)",
    )
    parser.add_argument("--data-root", default=None, help="data directory for dataset checks")
    parser.add_argument(
        "--download", action="store_true", help="let dataset checks download missing files"
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def env_modules() -> list[str]:
    """Modules loaded as plugins through ``DSTBENCH_PLUGIN_MODULES`` (named after the module)."""
    text = os.environ.get(MODULES_ENV) or ""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def installed_plugins() -> list[str]:
    """Names of every plugin that can be loaded: the built-ins and the ``dstbench`` entry points."""
    names = {name for name, _ in DEFAULT_PLUGINS}
    names.update(ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def _components_by_plugin(name: str) -> tuple[dict[str, list[str]], set[str]]:
    """plugin -> [name] for every installed component called ``name`` (any kind), and the
    names of all installed components (for did-you-mean hints).
    """
    try:
        loaded = load_plugins(env={})  # every installed plugin, whatever the allow-list
    except PluginError:
        return {}, set()
    found: dict[str, list[str]] = {}
    every: set[str] = set()
    for kind in KIND_PLURALS:
        table = loaded.registry.table(kind)
        every.update(table)
        if name in table:
            found.setdefault(table[name].plugin, []).append(name)
    return found, every


def _check_device(device: str) -> None:
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        msg = f"--device: expected cpu, cuda or cuda:N, got {device!r}"
        raise DstbenchError(msg) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        msg = f"--device {device}: CUDA is not available on this machine"
        raise DstbenchError(msg)


def _reports(args: argparse.Namespace) -> list[PluginReport]:
    _check_device(args.device)
    options: dict[str, Any] = {
        "device": args.device,
        "data_root": args.data_root,
        "download": args.download,
        "train": args.train,
        "time_limit": args.time_limit,
    }
    plugins = installed_plugins()
    reports = []
    targets = list(args.targets)
    if args.all:
        targets += [p for p in plugins if p not in targets]
    if not targets and not args.module:
        msg = (
            "name a plugin, a component or a module to check, or pass --all; "
            f"plugins: {choices_text(plugins)}"
        )
        raise DstbenchError(msg)
    for module in args.module:
        reports.append(check_module(module, **options))
    modules = env_modules()
    for target in targets:
        if target.endswith(".py") or (target in modules and target not in plugins):
            # a file, or a module `dstbench plugins` lists as loaded from DSTBENCH_PLUGIN_MODULES
            reports.append(check_module(target, **options))
        elif target in plugins:
            reports.append(check_plugin(target, **options))
        else:
            owners, components = _components_by_plugin(target)
            if not owners:
                msg = (
                    f"{target!r} is neither an installed plugin nor a registered component"
                    f"{did_you_mean(target, [*plugins, *modules, *components])}; "
                    f"plugins: {choices_text([*plugins, *modules])}"
                )
                raise DstbenchError(msg)
            for plugin, names in owners.items():
                reports.append(check_plugin(plugin, components=names, **options))
    return reports


def run(args: argparse.Namespace) -> int:
    """Print each report; exit 1 when any check failed."""
    reports = _reports(args)
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print("\n\n".join(format_report(r, verbose=args.verbose) for r in reports))
    failed = [r.plugin for r in reports if not r.ok]
    if failed and not args.json:
        sys.stderr.write(f"dstbench check-plugin: failed: {', '.join(failed)}\n")
    return 1 if failed else 0
