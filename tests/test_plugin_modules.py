"""``DSTBENCH_PLUGIN_MODULES``: plugins from importable modules, without an entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest

from dstbench.plugins import load_plugins

PLUGIN = textwrap.dedent(
    """
    from dstbench import hookimpl

    def half(ctx):
        return ctx.weight.abs() * 0.5

    @hookimpl
    def dstbench_register_criteria(register):
        register("half_magnitude", half)
    """
)


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "dstbench_test_modplugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "dstbench_test_modplugin"
    sys.modules.pop("dstbench_test_modplugin", None)


def test_named_module_is_loaded_even_with_an_empty_allow_list(plugin_module):
    env = {"DSTBENCH_LOAD_PLUGINS": "", "DSTBENCH_PLUGIN_MODULES": f" {plugin_module} ,"}
    loaded = load_plugins(env=env)
    assert "half_magnitude" in loaded.registry.criteria
    record = loaded.records[plugin_module]
    assert record.status == "loaded"
    assert record.registered == {"criteria": ["half_magnitude"]}


def test_named_module_can_be_disabled(plugin_module):
    env = {"DSTBENCH_PLUGIN_MODULES": plugin_module, "DSTBENCH_DISABLE_PLUGINS": plugin_module}
    loaded = load_plugins(env=env)
    assert "half_magnitude" not in loaded.registry.criteria
    assert loaded.records[plugin_module].status == "blocked"


def test_missing_module_fails_alone_and_by_name():
    loaded = load_plugins(env={"DSTBENCH_PLUGIN_MODULES": "no_such_dstbench_module"})
    record = loaded.records["no_such_dstbench_module"]
    assert record.status == "failed"
    assert "ModuleNotFoundError" in record.error
    assert "magnitude" in loaded.registry.criteria  # everything else still works


def test_membership_of_a_missing_name_is_false_not_an_error(registry):
    assert "magnitude" in registry.criteria
    assert "magnitue" not in registry.criteria


def test_check_plugin_accepts_a_loaded_module_by_its_name(tmp_path, monkeypatch, capsys):
    from dstbench.cli import main

    name = "dstbench_test_checked_module"
    documented = PLUGIN.replace("def half(ctx):", 'def half(ctx):\n    """Half |w|."""')
    (tmp_path / f"{name}.py").write_text(documented)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DSTBENCH_PLUGIN_MODULES", name)
    try:
        assert main(["check-plugin", name, "--no-train", "-v"]) == 0
        out = capsys.readouterr().out
        assert f"plugin {name!r}" in out and "half_magnitude" in out
        monkeypatch.delenv("DSTBENCH_PLUGIN_MODULES")
        assert main(["check-plugin", name, "--no-train"]) == 2  # not loaded: unknown name
    finally:
        sys.modules.pop(name, None)
