"""pytest fixtures and assertions for plugin authors (the conformance kit, in pytest form).

Enable it with ``-p dstbench.testing`` (e.g. ``addopts = "-p dstbench.testing"`` under
``[tool.pytest.ini_options]``) or ``pytest_plugins = ["dstbench.testing"]`` in your top-level
``conftest.py``. It is not loaded automatically: projects that merely have dstbench installed
do not pay for importing torch at pytest start-up. Then::

    import my_plugin
    from dstbench.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin(my_plugin)              # every component, every check

    def test_my_criterion_in_a_short_run(dstbench_plugins, dstbench_run):
        dstbench_plugins(my_plugin)          # the built-ins + my_plugin, nothing else
        record = dstbench_run(criterion="my_criterion")
        assert record["status"] == "ok"

Fixtures: ``dstbench_plugins`` (load given plugins beside the built-ins, process-wide for the
test), ``dstbench_layer`` (a Linear/Conv layer context like the engine's), ``dstbench_run``
(a one-epoch DST run on digits), ``dstbench_tiny_model``, ``dstbench_tiny_data`` and
``dstbench_cli`` (run the command line, capture its output). Assertions:
:func:`check_plugin`, :func:`check_component`, :func:`check_criterion`, :func:`check_growth`
raise ``AssertionError`` with the conformance report (what failed and how to fix it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from dstbench.conformance import (
    ComponentReport,
    PluginReport,
    format_report,
    make_layer,
)
from dstbench.conformance import check_component as _check_component
from dstbench.conformance import check_plugin as _check_plugin
from dstbench.conformance.training import SHORT_RUN
from dstbench.contracts.data import DatasetParts, TensorSplit
from dstbench.plugins import (
    ALLOW_ENV,
    DEFAULT_PLUGINS,
    DISABLE_ENV,
    LoadedPlugins,
    get_plugins,
    load_plugins,
    set_plugins,
)
from dstbench.registry import ComponentInfo

__all__ = [
    "CliResult",
    "check_component",
    "check_criterion",
    "check_growth",
    "check_plugin",
    "load_only",
]

PluginArg = object | tuple[str, object] | str


def _plugin_name(obj: object) -> str:
    return str(getattr(obj, "__name__", None) or type(obj).__name__)


def load_only(*plugins: PluginArg, builtins: bool = True) -> LoadedPlugins:
    """Load the built-ins (unless ``builtins=False``) and exactly ``plugins``.

    Each plugin is a module or object (registered under its ``__name__``), a ``(name, obj)``
    pair, or the name of an installed plugin (loaded through its entry point). Other
    installed plugins are left out, so tests do not depend on the environment.

    :raises AssertionError: when a given plugin fails to load, with its error.
    """
    extra: list[tuple[str, object]] = []
    installed: list[str] = []
    for plugin in plugins:
        if isinstance(plugin, str):
            installed.append(plugin)
        elif isinstance(plugin, tuple):
            extra.append((str(plugin[0]), plugin[1]))
        else:
            extra.append((_plugin_name(plugin), plugin))
    env = {ALLOW_ENV: ",".join([*installed, *(name for name, _ in extra)])}
    if not builtins:
        env[DISABLE_ENV] = ",".join(name for name, _ in DEFAULT_PLUGINS)
    loaded = load_plugins(env=env, extra=extra, entry_points=bool(installed) or not builtins)
    wanted = [*installed, *(name for name, _ in extra)]
    for name in wanted:
        record = loaded.records.get(name)
        if record is None:
            msg = f"plugin {name!r} is not installed (no 'dstbench' entry point of that name)"
            raise AssertionError(msg)
        if record.status != "loaded":
            msg = f"plugin {name!r} did not load: {record.status}: {record.error}"
            raise AssertionError(msg)
    return loaded


def _raise_on_failure(report: PluginReport | ComponentReport) -> None:
    if isinstance(report, ComponentReport):
        wrapper = PluginReport(report.plugin, "component check", components=[report])
    else:
        wrapper = report
    if not wrapper.ok:
        raise AssertionError("conformance checks failed\n" + format_report(wrapper))


def check_plugin(plugin: object | str, **options: Any) -> PluginReport:
    """Assert that ``plugin`` (a module/object, or an installed plugin's name) passes every
    conformance check; options as for :func:`dstbench.conformance.check_plugin`.

    :raises AssertionError: with the report of the failed checks and their fixes.
    """
    report = _check_plugin(plugin, **options)
    _raise_on_failure(report)
    return report


def check_component(
    kind: str,
    component: str | ComponentInfo,
    *,
    plugins: LoadedPlugins | None = None,
    **options: Any,
) -> ComponentReport:
    """Assert that one component passes its conformance checks.

    :param kind: ``"criterion"``, ``"growth"``, ``"schedule"``, ``"distribution"``,
        ``"model"`` or ``"dataset"``.
    :param component: a registered name (looked up in ``plugins``) or an info object.
    :param plugins: default: the process-wide plugins (set by ``dstbench_plugins``).
    :param options: ``params``, ``device``, ``train``, ``data_root``, ``download``.
    """
    plugins = plugins or get_plugins()
    info = component if isinstance(component, ComponentInfo) else None
    info = info or plugins.registry.table(kind)[str(component)]
    report = _check_component(info, plugins, **options)
    _raise_on_failure(report)
    return report


def check_criterion(name: str | ComponentInfo, **options: Any) -> ComponentReport:
    """:func:`check_component` for a pruning criterion."""
    return check_component("criterion", name, **options)


def check_growth(name: str | ComponentInfo, **options: Any) -> ComponentReport:
    """:func:`check_component` for a growth method."""
    return check_component("growth", name, **options)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def dstbench_plugins() -> Iterator[Callable[..., LoadedPlugins]]:
    """Factory: ``dstbench_plugins(my_plugin, ..., builtins=True)`` loads the built-ins and
    exactly the given plugins (see :func:`load_only`) and makes them the process-wide plugins
    for the rest of the test, so ``dstbench.execute``, ``dstbench.prune`` and the CLI use them.
    """
    from dstbench import plugins as plugins_module

    previous = plugins_module._LOADED

    def install(*plugins: PluginArg, builtins: bool = True) -> LoadedPlugins:
        loaded = load_only(*plugins, builtins=builtins)
        set_plugins(loaded)
        return loaded

    yield install
    set_plugins(previous)


@pytest.fixture
def dstbench_layer() -> Callable[..., Any]:
    """Factory: ``dstbench_layer(shape=(16, 24), density=0.5, seed=0, grad=True,
    momentum=True, device="cpu")`` -> a :class:`dstbench.CriterionContext` like the engine's
    (inactive weights zero, a few active zeros, a dead unit's zero gradient).
    """
    return make_layer


@pytest.fixture
def dstbench_run(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Factory: ``dstbench_run(**spec)`` trains a short DST run and returns its record.

    Defaults: an MLP with one hidden layer of 32 on digits, one epoch, an update every 2
    iterations, density 0.2, magnitude/random; keyword arguments override any run-spec key.
    Each call gets its own ``artifact_dir`` under ``tmp_path``. Uses the process-wide plugins
    (call ``dstbench_plugins`` first to choose them).
    """
    from dstbench.engine.single import execute

    counter = itertools.count()

    def run(*, device: str = "cpu", **spec: Any) -> dict[str, Any]:
        artifact_dir = tmp_path / f"run-{next(counter)}"
        artifact_dir.mkdir()
        return execute({**SHORT_RUN, **spec}, device=device, artifact_dir=artifact_dir)

    return run


class _TinyConvNet(nn.Sequential):
    """Conv (4-D weight) + Linear (2-D weight): both kinds of sparse layer, in a few µs."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int) -> None:
        channels = input_shape[0]
        spatial = math.prod(input_shape[1:])
        super().__init__(
            nn.Conv2d(channels, 4, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * spatial, num_classes),
        )


@pytest.fixture
def dstbench_tiny_model() -> Callable[..., nn.Module]:
    """Factory: ``dstbench_tiny_model(input_shape=(1, 8, 8), num_classes=10, seed=0)`` -> a
    Conv2d + Linear network (use it as a model factory's body or to test hooks).
    """

    def build(
        input_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, seed: int = 0
    ) -> nn.Module:
        torch.manual_seed(seed)
        return _TinyConvNet(tuple(input_shape), num_classes)

    return build


@pytest.fixture
def dstbench_tiny_data() -> Callable[..., DatasetParts]:
    """Factory: ``dstbench_tiny_data(n=256, input_shape=(1, 8, 8), num_classes=10, seed=0)``
    -> :class:`dstbench.DatasetParts` of Gaussian blobs, one mean per class (learnable).
    """

    def build(
        n: int = 256,
        input_shape: tuple[int, ...] = (1, 8, 8),
        num_classes: int = 10,
        seed: int = 0,
    ) -> DatasetParts:
        g = torch.Generator().manual_seed(seed)
        means = torch.randn((num_classes, *input_shape), generator=g)
        y = torch.arange(2 * n) % num_classes
        x = means[y] + 0.5 * torch.randn((2 * n, *input_shape), generator=g)
        return DatasetParts(
            train=TensorSplit(x[:n], y[:n]),
            test=TensorSplit(x[n:], y[n:]),
            input_shape=tuple(input_shape),
            num_classes=num_classes,
        )

    return build


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured output of one ``dstbench`` command."""

    code: int
    out: str
    err: str


@pytest.fixture
def dstbench_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Factory: ``dstbench_cli("plugins", "--json")`` runs the command line in-process (with
    the process-wide plugins) and returns its exit code, stdout and stderr.
    """
    from dstbench.cli import main

    def invoke(*argv: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
