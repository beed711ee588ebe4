"""Plugins register in load order: built-ins first, so a collision blames the newcomer."""

from __future__ import annotations

from dstbench import hookimpl
from dstbench.errors import PluginError
from dstbench.plugins import load_plugins


class _First:
    @hookimpl
    def dstbench_register_criteria(self, register):
        register("shared", lambda ctx: ctx.weight.abs(), description="first")


class _Second:
    @hookimpl
    def dstbench_register_criteria(self, register):
        register("shared", lambda ctx: ctx.weight.abs(), description="second")


def test_collision_names_the_later_plugin_last_and_suggests_blocking_it():
    try:
        load_plugins(extra=[("first", _First()), ("second", _Second())], entry_points=False, env={})
    except PluginError as exc:
        assert str(exc) == (
            "criterion 'shared' is registered by both plugin 'first' and plugin 'second'; "
            "block one with DSTBENCH_DISABLE_PLUGINS=second"
        )
    else:
        raise AssertionError("a collision must be an error")


def test_registrations_are_recorded_in_load_order():
    loaded = load_plugins(extra=[("first", _First())], entry_points=False, env={})
    assert list(loaded.records)[:6] == [
        "builtin-criteria", "builtin-growth", "builtin-schedules", "builtin-distributions",
        "builtin-models", "builtin-datasets",
    ]  # fmt: skip
    assert loaded.records["first"].registered == {"criteria": ["shared"]}
