"""Plugin discovery end to end: real entry points found by importlib.metadata in a subprocess.

Each test builds fake *installed* distributions (a ``<name>.dist-info`` directory with METADATA
and entry_points.txt, plus the module) in a temporary directory put on the subprocess's
PYTHONPATH, then runs ``python -m dstbench`` with the DSTBENCH_* variables under test. This is
the real discovery path, without installing anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GOOD = '''
from dstbench import hookimpl

def fake_abs(ctx):
    """|w|, from a fake installed plugin."""
    return ctx.weight.abs()

@hookimpl
def dstbench_register_criteria(register):
    register("fake_abs", fake_abs)
'''

BROKEN = """
import dstbench_missing_dependency
"""

TYPO = """
from dstbench import hookimpl

@hookimpl
def dstbench_register_criterias(register):
    register("never", lambda ctx: ctx.weight)
"""

TWIN = """
from dstbench import hookimpl

@hookimpl
def dstbench_register_criteria(register):
    register("fake_abs", lambda ctx: ctx.weight.abs(), description="the same name again")
"""


def install_fake(site: Path, dist: str, version: str, entry_point: str, source: str) -> None:
    """Make ``site`` hold an installed distribution ``dist`` with one ``dstbench`` entry point."""
    module = dist.replace("-", "_")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[dstbench]\n{entry_point} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    install_fake(site, "dstbench-fake-good", "1.2.3", "fake-good", GOOD)
    install_fake(site, "dstbench-fake-broken", "0.0.1", "fake-broken", BROKEN)
    install_fake(site, "dstbench-fake-typo", "0.2.0", "fake-typo", TYPO)
    return site


def dstbench(
    *args: str, sites: list[Path], cwd: Path, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dstbench ARGS`` with only the given DSTBENCH_* variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSTBENCH_")}
    env["PYTHONPATH"] = os.pathsep.join(
        [*(str(s) for s in sites), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env.update(env_vars)
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def plugins_json(site: Path, tmp_path: Path, **env_vars: str) -> dict[str, dict]:
    result = dstbench("plugins", "--json", sites=[site], cwd=tmp_path, **env_vars)
    assert result.returncode == 0, result.stderr
    return {p["name"]: p for p in json.loads(result.stdout)["plugins"]}


@pytest.mark.slow
def test_installed_plugins_are_found_and_broken_ones_reported(site, tmp_path):
    plugins = plugins_json(site, tmp_path)
    good = plugins["fake-good"]
    assert (good["status"], good["distribution"], good["version"]) == (
        "loaded",
        "dstbench-fake-good",
        "1.2.3",
    )
    assert good["registered"] == {"criteria": ["fake_abs"]}
    assert good["builtin"] is False
    broken = plugins["fake-broken"]
    assert broken["status"] == "failed"
    assert broken["error"] == "ModuleNotFoundError: No module named 'dstbench_missing_dependency'"
    typo = plugins["fake-typo"]
    assert typo["status"] == "failed"
    assert typo["error"] == (
        "PluginError: plugin 'fake-typo' implements unknown hook 'dstbench_register_criterias' "
        "(did you mean 'dstbench_register_criteria'?)"
    )
    assert plugins["builtin-criteria"]["status"] == "loaded"  # the rest still works


@pytest.mark.slow
def test_disable_blocks_third_party_and_builtin_plugins(site, tmp_path):
    plugins = plugins_json(site, tmp_path, DSTBENCH_DISABLE_PLUGINS="fake-good, builtin-schedules")
    assert plugins["fake-good"]["status"] == "blocked"
    assert plugins["builtin-schedules"]["status"] == "blocked"
    assert plugins["builtin-criteria"]["status"] == "loaded"
    assert plugins["fake-good"]["registered"] == {}


@pytest.mark.slow
def test_allow_list_loads_only_the_named_third_party_plugins(site, tmp_path):
    plugins = plugins_json(site, tmp_path, DSTBENCH_LOAD_PLUGINS="fake-good")
    assert plugins["fake-good"]["status"] == "loaded"
    assert plugins["fake-broken"]["status"] == "skipped"
    assert plugins["fake-typo"]["status"] == "skipped"
    assert all(p["status"] == "loaded" for p in plugins.values() if p["builtin"])


@pytest.mark.slow
def test_empty_allow_list_loads_no_third_party_plugin(site, tmp_path):
    plugins = plugins_json(site, tmp_path, DSTBENCH_LOAD_PLUGINS="")
    third_party = [p for p in plugins.values() if not p["builtin"]]
    assert third_party and all(p["status"] == "skipped" for p in third_party)


@pytest.mark.slow
def test_collision_between_two_installed_plugins_is_an_error_naming_both(site, tmp_path):
    twin_site = tmp_path / "twin"
    install_fake(twin_site, "dstbench-fake-twin", "2.0", "fake-twin", TWIN)
    result = dstbench(
        "plugins",
        sites=[site, twin_site],
        cwd=tmp_path,
        DSTBENCH_LOAD_PLUGINS="fake-good,fake-twin",
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("dstbench: error: criterion 'fake_abs' is registered by both plugin ")
    assert "'fake-good'" in line and "'fake-twin'" in line
    assert "DSTBENCH_DISABLE_PLUGINS=" in line


@pytest.mark.slow
def test_a_run_records_the_installed_plugin_behind_its_criterion(site, tmp_path):
    result = dstbench(
        "run",
        "--model", "mlp", "--dataset", "digits", "--criterion", "fake_abs",
        "--epochs", "1", "--density", "0.2", "--json",
        sites=[site],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Broken plugins are reported, by name and distribution, and the run goes on.
    assert (
        "dstbench: warning: plugin 'fake-broken' (dstbench-fake-broken 0.0.1) failed: "
        "ModuleNotFoundError: No module named 'dstbench_missing_dependency'"
    ) in result.stderr
    assert "plugin 'fake-typo' (dstbench-fake-typo 0.2.0) failed" in result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "ok"
    provenance = record["provenance"]
    assert provenance["components"]["criterion"] == {
        "name": "fake_abs",
        "plugin": "fake-good",
        "distribution": "dstbench-fake-good",
        "version": "1.2.3",
        "defaults": {},
    }
    assert provenance["components"]["growth"]["distribution"] == "dstbench"
    listed = {p["name"]: p for p in provenance["plugins"]}
    assert listed["fake-good"]["version"] == "1.2.3"
    assert "fake-broken" not in listed  # only plugins that loaded


def test_the_test_suite_itself_loads_no_installed_third_party_plugin():
    from dstbench.plugins import get_plugins

    records = get_plugins().records.values()
    assert all(r.status == "skipped" for r in records if not r.builtin)
    assert all(r.status == "loaded" for r in records if r.builtin)
