"""Checking a whole plugin: load it beside the built-ins only, then check what it registered."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dstbench.conformance.functions import check_distribution, check_schedule
from dstbench.conformance.report import Check, ComponentReport, PluginReport
from dstbench.conformance.selection import check_selector
from dstbench.conformance.training import (
    LIFECYCLE_HOOKS,
    check_dataset,
    check_lifecycle,
    check_model,
    check_trains,
)
from dstbench.errors import PluginError, choices_text, did_you_mean
from dstbench.plugins import ALLOW_ENV, REGISTRATION_HOOKS, LoadedPlugins, load_plugins
from dstbench.registry import KIND_PLURALS, ComponentInfo, CriterionInfo, GrowthInfo

LOADS = "loads without error"
HOOKS = "implements at least one dstbench hook"

_KIND_OF_PLURAL = {plural: kind for kind, plural in KIND_PLURALS.items()}


#: Seconds one component's checks may take before it is failed as never answering.
COMPONENT_SECONDS = 300.0
ANSWERS = "answers within the time limit"


class _TimeUp(BaseException):
    """Raised in the main thread when a component's checks run past their time limit."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_TimeUp` after ``seconds`` (SIGALRM; in the main thread of a POSIX
    process only, elsewhere no limit applies)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_component(
    info: ComponentInfo,
    plugins: LoadedPlugins,
    *,
    params: Mapping[str, Any] | None = None,
    device: str = "cpu",
    data_root: str | Path | None = None,
    download: bool = False,
    train: bool = True,
    time_limit: float | None = COMPONENT_SECONDS,
) -> ComponentReport:
    """Every check for one registered component (``train=False`` skips the short runs).

    :param time_limit: seconds its checks may take (None: no limit); a component that does
        not answer in time fails ``answers within the time limit`` and the rest is skipped.
    """
    report = ComponentReport(info.kind, info.name, info.plugin)
    try:
        with _time_limit(time_limit):
            _run_checks(report, info, plugins, params, device, data_root, download, train)
    except _TimeUp:
        report.checks.append(
            Check(
                ANSWERS,
                "fail",
                f"its checks did not finish within {time_limit:g}s (a call that never returns?)",
                "make every call return; a slow component can be checked with a larger "
                "--time-limit",
            )
        )
    return report


def _run_checks(
    report: ComponentReport,
    info: ComponentInfo,
    plugins: LoadedPlugins,
    params: Mapping[str, Any] | None,
    device: str,
    data_root: str | Path | None,
    download: bool,
    train: bool,
) -> None:
    if isinstance(info, (CriterionInfo, GrowthInfo)):
        report.checks += check_selector(info, params=params, device=device)
        if train:
            report.checks += check_trains(info, plugins, device=device)
    elif info.kind == "schedule":
        report.checks += check_schedule(info, params=params)
    elif info.kind == "distribution":
        report.checks += check_distribution(info, params=params)
    elif info.kind == "model":
        report.checks += check_model(info, params=params, device=device)
    elif info.kind == "dataset":
        report.checks += check_dataset(
            info, plugins, params=params, data_root=data_root, download=download, device=device
        )
    elif info.kind == "analysis":
        from dstbench.conformance.analyses import check_analysis

        report.checks += check_analysis(info, params=params)
    else:
        report.checks.append(Check("has conformance checks", "skip", f"none for {info.kind}s yet"))


def load_for_check(plugin: str, obj: object | None = None) -> tuple[LoadedPlugins | None, Check]:
    """Load the built-ins and ``plugin`` only (an installed plugin by name, or ``obj``), so
    that other installed plugins cannot interfere. Returns the plugins (None when the registry
    cannot be built) and the outcome of loading.
    """
    extra = [(plugin, obj)] if obj is not None else []
    try:
        loaded = load_plugins(env={ALLOW_ENV: plugin}, extra=extra, entry_points=obj is None)
    except PluginError as exc:  # a name collision: the registry cannot be built
        fix = (
            "component names are global per kind: rename the component, or prefix it with "
            "your plugin's name"
        )
        return None, Check(LOADS, "fail", str(exc), fix)
    record = loaded.records.get(plugin)
    if record is None:
        known = [name for name in loaded.records if " (" not in name]
        msg = (
            f"unknown plugin {plugin!r}{did_you_mean(plugin, known)}; installed plugins: "
            f"{choices_text(known)}"
        )
        raise PluginError(msg)
    if record.status != "failed":
        return loaded, Check(LOADS, "pass")
    error = record.error or ""
    if "unknown hook" in error:
        fix = "rename the function to one of dstbench's hooks (see docs/plugins.md, Hook reference)"
    elif error.startswith("in dstbench_register_"):
        fix = "fix the register() call in that hook; the error says which argument is wrong"
    elif "already used by" in error:
        fix = "give the entry point a name no other installed plugin uses"
    else:
        fix = f'make `python -c "import {record.module.split(":")[0]}"` work (missing dependency?)'
    return loaded, Check(LOADS, "fail", error, fix)


def _source(loaded: LoadedPlugins | None, plugin: str, obj: object | None) -> str:
    record = loaded.records.get(plugin) if loaded is not None else None
    if record is not None and record.distribution:
        return f"{record.distribution} {record.version}"
    if obj is not None:
        return str(getattr(obj, "__file__", None) or getattr(obj, "__name__", type(obj).__name__))
    return record.module if record is not None else "?"


def check_plugin(
    plugin: str | object,
    *,
    name: str | None = None,
    components: list[str] | None = None,
    device: str = "cpu",
    data_root: str | Path | None = None,
    download: bool = False,
    train: bool = True,
    time_limit: float | None = COMPONENT_SECONDS,
) -> PluginReport:
    """Check a plugin and everything it registers.

    :param plugin: an installed plugin's name (as ``dstbench plugins`` lists it, built-ins
        included), or a plugin object/module that is not installed.
    :param name: the name to register an object under (default: its ``__name__``).
    :param components: check only these component names (default: all).
    :param train: run the short training runs (criteria, growth methods, lifecycle hooks).
    :param time_limit: seconds each component's checks may take (None: no limit).
    :raises PluginError: when ``plugin`` names no installed plugin.
    """
    obj = None if isinstance(plugin, str) else plugin
    label = plugin if isinstance(plugin, str) else name or getattr(plugin, "__name__", None)
    label = label or type(plugin).__name__
    loaded, outcome = load_for_check(label, obj)
    report = PluginReport(label, _source(loaded, label, obj), checks=[outcome])
    if loaded is None or outcome.failed:
        return report
    record = loaded.records[label]
    implemented = sorted(
        caller.name
        for caller in loaded.manager.get_hookcallers(loaded.manager.get_plugin(label)) or []
    )
    if implemented:
        report.checks.append(Check(HOOKS, "pass", ", ".join(implemented)))
    else:
        report.checks.append(
            Check(
                HOOKS,
                "fail",
                "no function named after a dstbench hook and decorated with @hookimpl",
                "decorate the hook functions with `from dstbench import hookimpl` and check the "
                "entry point names the module that holds them",
            )
        )
    for kind, hook in REGISTRATION_HOOKS.items():
        if hook in implemented and not record.registered.get(KIND_PLURALS[kind]):
            report.checks.append(Check(f"{hook} registers something", "skip", "nothing registered"))
    for plural, names in record.registered.items():
        kind = _KIND_OF_PLURAL[plural]
        for component in names:
            if components is not None and component not in components:
                continue
            info = loaded.registry.table(kind)[component]
            report.components.append(
                check_component(
                    info,
                    loaded,
                    device=device,
                    data_root=data_root,
                    download=download,
                    train=train,
                    time_limit=time_limit,
                )
            )
    lifecycle = [h for h in implemented if h in LIFECYCLE_HOOKS]
    if lifecycle and components is None:
        hooks_report = ComponentReport("lifecycle hooks", "", label)
        if train:
            hooks_report.checks += check_lifecycle(loaded, label, lifecycle, device=device)
        else:
            hooks_report.checks.append(Check("lifecycle hooks run", "skip", "--no-train"))
        report.components.append(hooks_report)
    return report


def import_plugin(target: str) -> object:
    """Import a plugin module that is not installed: a ``path/to/file.py`` or a dotted name.

    :raises Exception: whatever the import raises (the caller reports it).
    """
    import importlib
    import importlib.util
    import sys

    path = Path(target)
    if path.suffix != ".py":
        return importlib.import_module(target)
    if not path.is_file():
        msg = f"{target}: no such file"
        raise PluginError(msg)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def check_module(target: str, **options: Any) -> PluginReport:
    """:func:`check_plugin` for a module given as a file path or dotted name; an import error
    is reported as the failed "loads" check.
    """
    from dstbench.conformance._collect import error_text

    name = Path(target).stem if target.endswith(".py") else target
    try:
        module = import_plugin(target)
    except PluginError:
        raise
    except Exception as exc:
        fix = f'make `python -c "import {name}"` work (a missing dependency or a bug at import)'
        return PluginReport(name, target, checks=[Check(LOADS, "fail", error_text(exc), fix)])
    report = check_plugin(module, name=name, **options)
    report.source = target
    _point_reproductions_at(report, target, name)
    return report


def _point_reproductions_at(report: PluginReport, target: str, module: str) -> None:
    """Make each "reproduce with: dstbench ..." fix load the module it is about.

    An installed plugin is found by every ``dstbench`` command; a module given by path or
    dotted name is not, so the command gets the environment that loads it.
    """
    import dataclasses
    import shlex

    env = f"DSTBENCH_PLUGIN_MODULES={shlex.quote(module)}"
    if target.endswith(".py"):
        folder = str(Path(target).resolve().parent)
        env = f"PYTHONPATH={shlex.quote(folder)} {env}"
    marker = "reproduce with: dstbench "
    lists = [report.checks, *(component.checks for component in report.components)]
    for checks in lists:
        for index, check in enumerate(checks):
            if check.fix.startswith(marker):
                fix = f"reproduce with: {env} dstbench {check.fix[len(marker) :]}"
                checks[index] = dataclasses.replace(check, fix=fix)
