"""The example plugins in plugins/ pass the conformance kit from source (no install needed) and
are well-formed packages: an entry point in the dstbench group naming their module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dstbench.conformance import format_report
from dstbench.conformance.plugin import check_module

PLUGINS = Path(__file__).parent.parent / "plugins"
EXAMPLES = sorted(p for p in PLUGINS.iterdir() if (p / "pyproject.toml").is_file())


def test_there_are_example_plugins():
    assert [p.name for p in EXAMPLES] == ["dstbench-criteria-extra", "dstbench-csv-logger"]


def _project(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((path / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_plugin_is_a_complete_package(path):
    project = _project(path)
    module = project["tool"]["setuptools"]["py-modules"][0]
    entry_points = project["project"]["entry-points"]["dstbench"]
    assert list(entry_points.values()) == [module]
    assert (path / f"{module}.py").is_file()
    assert (path / "README.md").is_file()
    assert list((path / "tests").glob("test_*.py"))
    assert project["project"]["name"] == path.name
    assert "dstbench>=0.1" in project["project"]["dependencies"]
    assert "-p dstbench.testing" in project["tool"]["pytest"]["ini_options"]["addopts"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_plugin_passes_the_conformance_kit(path):
    module = _project(path)["tool"]["setuptools"]["py-modules"][0]
    report = check_module(str(path / f"{module}.py"))
    assert report.ok, format_report(report)
    assert report.components
