"""Plugin discovery and loading.

Plugins come from the ``dstbench`` entry-point group, the built-ins included (they are declared
in dstbench's own ``pyproject.toml``). Loading is strict but recoverable:

* a plugin that fails to import, or whose registration hook raises, is reported by name with
  its error and left out; everything else keeps working;
* a hook implementation with no matching spec (a typo) fails that plugin, naming the hook;
* two plugins registering the same name for one kind is an error naming both;
* ``DSTBENCH_DISABLE_PLUGINS=a,b`` blocks plugins by name (built-ins too);
* ``DSTBENCH_LOAD_PLUGINS=a,b`` is an allow-list for third-party plugins (built-ins always
  load unless disabled); set it to the empty string to load no third-party plugin at all;
* ``DSTBENCH_PLUGIN_MODULES=pkg.mod,other`` loads importable modules as plugins without an
  entry point (each named after its module), like pytest's ``PYTEST_PLUGINS``: naming a module
  is the opt-in, so the allow-list does not apply, but ``DSTBENCH_DISABLE_PLUGINS`` does. The
  variable is inherited by suite worker processes, so such plugins work with ``-j N``;
* ``DSTBENCH_TRACE_PLUGINS=1`` traces every hook call on stderr.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from dstbench import hookspecs
from dstbench._version import __version__
from dstbench.errors import PluginError, did_you_mean
from dstbench.registry import KIND_PLURALS, KINDS, ComponentInfo, Register, Registry, build_registry

ENTRY_POINT_GROUP = "dstbench"
DISABLE_ENV = "DSTBENCH_DISABLE_PLUGINS"
ALLOW_ENV = "DSTBENCH_LOAD_PLUGINS"
TRACE_ENV = "DSTBENCH_TRACE_PLUGINS"
MODULES_ENV = "DSTBENCH_PLUGIN_MODULES"
CORE_DISTRIBUTION = "dstbench"

#: The built-in plugins, used when dstbench runs from a source tree without installed
#: metadata (their entry points are then missing). Kept in sync with pyproject.toml by a test.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin-criteria", "dstbench.builtin.criteria"),
    ("builtin-growth", "dstbench.builtin.growth"),
    ("builtin-schedules", "dstbench.builtin.schedules"),
    ("builtin-distributions", "dstbench.builtin.distributions"),
    ("builtin-models", "dstbench.builtin.models"),
    ("builtin-datasets", "dstbench.builtin.datasets"),
    ("builtin-engines", "dstbench.builtin.engines"),
    ("builtin-executors", "dstbench.builtin.executors"),
    ("builtin-analyses", "dstbench.builtin.analyses"),
)

#: Registration hook for each component kind (from the kinds table).
REGISTRATION_HOOKS: dict[str, str] = {kind.name: kind.hook for kind in KINDS}


@dataclass
class PluginRecord:
    """What happened to one plugin: where it comes from, whether it loaded, what it added."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    #: ``loaded``, ``failed``, ``blocked`` (disabled) or ``skipped`` (not in the allow-list).
    status: str = "loaded"
    error: str | None = None
    #: kind (plural) -> names registered.
    registered: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, used by ``dstbench plugins --json`` and result provenance."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "status": self.status,
            "error": self.error,
            "registered": {k: v for k, v in self.registered.items() if v},
        }


@dataclass
class _Candidate:
    name: str
    module: str
    distribution: str | None
    version: str | None
    load: Any  # () -> plugin object


@dataclass
class LoadedPlugins:
    """The plugin manager, a record per plugin and the assembled registry."""

    manager: pluggy.PluginManager
    records: dict[str, PluginRecord]
    registry: Registry

    @property
    def hook(self) -> Any:
        """The manager's hook relay (``plugins.hook.dstbench_run_start(run=...)``)."""
        return self.manager.hook

    def failures(self) -> list[PluginRecord]:
        """Records of plugins that failed to load or register."""
        return [r for r in self.records.values() if r.status == "failed"]

    def record_for(self, info: ComponentInfo) -> PluginRecord | None:
        """The record of the plugin that registered ``info``."""
        return self.records.get(info.plugin)


def _split_env(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _split_env_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _entry_point_candidates() -> list[_Candidate]:
    candidates = []
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        candidates.append(
            _Candidate(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist is not None else None,
                version=dist.version if dist is not None else None,
                load=ep.load,
            )
        )
    if not any(c.distribution == CORE_DISTRIBUTION for c in candidates):
        # Running from a source checkout that is not installed: load the built-ins directly.
        candidates[:0] = _builtin_candidates()
    # Built-ins first, then third-party plugins by name: a stable order whatever sys.path says.
    return sorted(candidates, key=lambda c: (c.distribution != CORE_DISTRIBUTION, c.name))


def _builtin_candidates() -> list[_Candidate]:
    return [
        _Candidate(name, module, CORE_DISTRIBUTION, __version__, _importer(module))
        for name, module in DEFAULT_PLUGINS
    ]


def _importer(module: str) -> Any:
    return lambda: importlib.import_module(module)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def load_plugins(
    *,
    env: Mapping[str, str] | None = None,
    extra: Iterable[tuple[str, object]] = (),
    entry_points: bool = True,
) -> LoadedPlugins:
    """Discover, load and register every plugin, and build the registry.

    :param env: environment to read ``DSTBENCH_*`` variables from (default ``os.environ``).
    :param extra: ``(name, plugin)`` pairs registered after the entry-point plugins, as
        third-party plugins (tests use this for throw-away plugins).
    :param entry_points: when False, only the built-ins and ``extra`` are loaded (modules
        named in ``DSTBENCH_PLUGIN_MODULES`` still are: they come after the entry-point
        plugins and before ``extra``).
    :raises PluginError: when two plugins register the same name for one kind.
    """
    env = os.environ if env is None else env
    disabled = _split_env(env.get(DISABLE_ENV)) or set()
    allowed = _split_env(env.get(ALLOW_ENV))

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    if env.get(TRACE_ENV):
        manager.trace.root.setwriter(lambda text: sys.stderr.write(f"dstbench trace: {text}"))
        manager.enable_tracing()

    candidates = _entry_point_candidates() if entry_points else _builtin_candidates()
    modules = list(dict.fromkeys(_split_env_list(env.get(MODULES_ENV))))
    candidates += [_Candidate(module, module, None, None, _importer(module)) for module in modules]
    explicit = set(modules)
    for name, obj in extra:
        candidates.append(
            _Candidate(
                name, getattr(obj, "__name__", type(obj).__name__), None, None, lambda o=obj: o
            )
        )

    records: dict[str, PluginRecord] = {}
    for cand in candidates:
        builtin = cand.distribution == CORE_DISTRIBUTION
        record = PluginRecord(
            name=cand.name,
            module=cand.module,
            distribution=cand.distribution,
            version=cand.version,
            builtin=builtin,
        )
        if cand.name in records:
            first = records[cand.name]
            record.status = "failed"
            record.error = (
                f"plugin name {cand.name!r} is already used by "
                f"{first.distribution or first.module!r}"
            )
            records[f"{cand.name} ({cand.distribution or cand.module})"] = record
            continue
        records[cand.name] = record
        if cand.name in disabled:
            record.status = "blocked"
            manager.set_blocked(cand.name)
            continue
        if (
            not builtin
            and cand.name not in explicit
            and allowed is not None
            and cand.name not in allowed
        ):
            record.status = "skipped"
            continue
        try:
            plugin = cand.load()
            manager.register(plugin, name=cand.name)
            _check_hook_names(manager, plugin, cand.name)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one calling sys.exit) is skipped
            record.status = "failed"
            record.error = _error_text(exc)
            if manager.has_plugin(cand.name):
                manager.unregister(name=cand.name)

    infos = _collect_registrations(manager, records)
    registry = build_registry(infos)
    return LoadedPlugins(manager=manager, records=records, registry=registry)


def _check_hook_names(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Fail the plugin when it implements a hook dstbench does not define (a typo)."""
    known = [n for n in dir(hookspecs) if n.startswith("dstbench_")]
    for caller in manager.get_hookcallers(plugin) or []:
        if caller.spec is None:
            msg = (
                f"plugin {name!r} implements unknown hook {caller.name!r}"
                f"{did_you_mean(caller.name, known)}"
            )
            raise PluginError(msg)


def _collect_registrations(
    manager: pluggy.PluginManager, records: dict[str, PluginRecord]
) -> list[ComponentInfo]:
    """Call every registration hook plugin by plugin, so that failures stay isolated."""
    by_plugin: dict[str, list[ComponentInfo]] = {}
    failed: set[str] = set()
    for kind, hook_name in REGISTRATION_HOOKS.items():
        caller = getattr(manager.hook, hook_name)
        # get_hookimpls() lists plugins in registration (load) order; pluggy *calls* them in
        # reverse. Registering in load order makes a collision name the later plugin second.
        for impl in caller.get_hookimpls():
            name = impl.plugin_name
            if name in failed:
                continue
            record = records[name]
            collected = by_plugin.setdefault(name, [])
            register = Register(kind, name, record.distribution, record.version, collected.append)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: one plugin must not end dstbench
                failed.add(name)
                record.status = "failed"
                record.error = f"in {hook_name}: {_error_text(exc)}"
                if os.environ.get(TRACE_ENV):
                    traceback.print_exc()
                manager.unregister(name=name)
    infos: list[ComponentInfo] = []
    for name, collected in by_plugin.items():
        if name in failed:
            continue
        record = records[name]
        for info in collected:
            record.registered.setdefault(KIND_PLURALS[info.kind], []).append(info.name)
        infos.extend(collected)
    return infos


_LOADED: LoadedPlugins | None = None


def get_plugins(*, reload: bool = False) -> LoadedPlugins:
    """The process-wide plugins, loaded on first use."""
    global _LOADED
    if _LOADED is None or reload:
        _LOADED = load_plugins()
    return _LOADED


def set_plugins(loaded: LoadedPlugins | None) -> None:
    """Replace the process-wide plugins (tests use this; ``None`` reloads on next use)."""
    global _LOADED
    _LOADED = loaded
