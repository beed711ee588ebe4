"""Plugin discovery through the entry-point group, isolation of broken plugins, collisions."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest
import tomllib
import torch

import dstbench
from dstbench.errors import PluginError
from dstbench.plugins import DEFAULT_PLUGINS, load_plugins

_counter = itertools.count()


def fake_distribution(
    root: Path, dist: str, version: str, modules: dict[str, str]
) -> dict[str, str]:
    """Write ``<dist>-<version>.dist-info`` with a ``dstbench`` entry point per module.

    This is what ``pip install`` leaves on disk, so discovery goes through the real
    ``importlib.metadata`` code path. Module names are made unique per call (imports are cached).
    """
    suffix = next(_counter)
    names = {}
    entry_lines = ["[dstbench]"]
    for entry_name, source in modules.items():
        module = f"{entry_name.replace('-', '_')}_{suffix}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        entry_lines.append(f"{entry_name} = {module}")
        names[entry_name] = module
    # Installers normalise the folder name to underscores; importlib.metadata relies on it.
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("\n".join(entry_lines) + "\n")
    return names


ABS_GRAD = """
    from dstbench import hookimpl

    @hookimpl
    def dstbench_register_criteria(register):
        register("abs_grad", lambda ctx: ctx.grad.abs(), needs_grad=True, description="|g|")
"""


def test_a_plugin_installed_through_an_entry_point_is_found_and_usable(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "dstbench-absgrad", "1.2.3", {"absgrad": ABS_GRAD})
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_plugins(env={})
    record = loaded.records["absgrad"]
    assert (record.status, record.distribution, record.version) == (
        "loaded",
        "dstbench-absgrad",
        "1.2.3",
    )
    assert record.registered == {"criteria": ["abs_grad"]}
    info = loaded.registry.criteria["abs_grad"]
    assert info.needs_grad and info.description == "|g|" and info.paper_order == "after"
    new = dstbench.prune(
        info,
        torch.ones(4),
        torch.ones(4, dtype=torch.bool),
        1,
        grad=torch.tensor([3.0, 1.0, 2.0, 4.0]),
    )
    assert new.tolist() == [True, False, True, True]


def test_the_allow_list_and_the_block_list(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "dstbench-absgrad", "1.0", {"absgrad": ABS_GRAD})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugins(env={"DSTBENCH_LOAD_PLUGINS": ""}).records["absgrad"].status == "skipped"
    assert "abs_grad" not in load_plugins(env={"DSTBENCH_LOAD_PLUGINS": ""}).registry.criteria
    assert (
        load_plugins(env={"DSTBENCH_LOAD_PLUGINS": "absgrad"}).records["absgrad"].status == "loaded"
    )
    blocked = load_plugins(env={"DSTBENCH_DISABLE_PLUGINS": "absgrad, builtin-growth"})
    assert blocked.records["absgrad"].status == "blocked"
    assert blocked.records["builtin-growth"].status == "blocked"
    assert len(blocked.registry.growth) == 0 and "magnitude" in blocked.registry.criteria


def test_a_broken_plugin_is_reported_by_name_and_the_rest_still_works(tmp_path, monkeypatch):
    fake_distribution(
        tmp_path,
        "dstbench-broken",
        "0.1",
        {
            "import-fails": "import a_module_that_does_not_exist\n",
            "hook-raises": """
                from dstbench import hookimpl

                @hookimpl
                def dstbench_register_criteria(register):
                    register("half_done", lambda ctx: ctx.weight)
                    raise RuntimeError("registration exploded")
            """,
            "hook-typo": """
                from dstbench import hookimpl

                @hookimpl
                def dstbench_register_criterias(register):
                    pass
            """,
        },
    )
    fake_distribution(tmp_path, "dstbench-absgrad", "1.0", {"absgrad": ABS_GRAD})
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_plugins(env={})
    failures = {r.name: r.error for r in loaded.failures()}
    assert set(failures) == {"import-fails", "hook-raises", "hook-typo"}
    assert "ModuleNotFoundError" in failures["import-fails"]
    assert "registration exploded" in failures["hook-raises"]
    assert re.search(
        r"unknown hook 'dstbench_register_criterias'.*'dstbench_register_criteria'",
        failures["hook-typo"],
    )
    assert "half_done" not in loaded.registry.criteria  # partial registrations are dropped
    assert "abs_grad" in loaded.registry.criteria and "magnitude" in loaded.registry.criteria


def test_two_plugins_registering_one_name_is_an_error_naming_both(tmp_path, monkeypatch):
    clash = ABS_GRAD.replace('"abs_grad"', '"magnitude"')
    fake_distribution(tmp_path, "dstbench-clash", "1.0", {"clash": clash})
    monkeypatch.syspath_prepend(str(tmp_path))
    both = (
        r"criterion 'magnitude' is registered by both plugin 'builtin-criteria' and plugin 'clash'"
    )
    with pytest.raises(PluginError, match=both):
        load_plugins(env={})


class BadRegistrations:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    @dstbench.hookimpl
    def dstbench_register_criteria(self, register):
        register(**self.kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name", "fn": abs}, "names are lower-case"),
        ({"name": "ok", "fn": 3}, "expected a callable"),
        ({"name": "ok", "fn": abs, "needs_hessian": True}, "unknown option"),
        ({"name": "ok", "fn": abs, "exact": False}, r"exact=False needs the selection form"),
        ({"name": "ok", "fn": lambda ctx, lam: ctx.weight}, "parameter 'lam'.*needs a default"),
        ({"name": "ok", "fn": abs, "paper_order": "during"}, "paper_order must be"),
    ],
)
def test_bad_registrations_fail_their_plugin_with_a_clear_reason(kwargs, message):
    loaded = load_plugins(env={}, entry_points=False, extra=[("bad", BadRegistrations(**kwargs))])
    assert loaded.records["bad"].status == "failed"
    assert re.search(message, loaded.records["bad"].error)


def test_parameters_come_from_the_signature_and_are_type_checked():
    def scaled(ctx, alpha: float = 2.0, use_abs: bool = True):
        return ctx.weight.abs() * alpha if use_abs else ctx.weight * alpha

    class Plugin:
        @dstbench.hookimpl
        def dstbench_register_criteria(self, register):
            register("scaled", scaled)

    loaded = load_plugins(env={}, entry_points=False, extra=[("p", Plugin())])
    info = loaded.registry.criteria["scaled"]
    assert dict(info.params) == {"alpha": 2.0, "use_abs": True}
    assert info.resolve_params({"alpha": 3}) == {"alpha": 3.0, "use_abs": True}
    with pytest.raises(dstbench.DstbenchError, match="'use_abs' expects bool"):
        info.resolve_params({"use_abs": "yes"})


def test_builtin_entry_points_match_the_fallback_list():
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["dstbench"]
    assert declared == dict(DEFAULT_PLUGINS)


def test_the_builtins_come_through_the_entry_point_group():
    loaded = load_plugins(env={"DSTBENCH_LOAD_PLUGINS": ""})
    builtins = {name for name, r in loaded.records.items() if r.builtin and r.status == "loaded"}
    assert builtins == {name for name, _ in DEFAULT_PLUGINS}
