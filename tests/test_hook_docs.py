"""The hook reference in docs/plugins.md is generated from the hook docstrings and current;
every hook is documented and has a test (datasette-style meta-tests).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from dstbench import hookdocs

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "plugins.md"
HOOKS = [name for name, _ in hookdocs.hook_specs()]


def test_every_hook_is_found():
    assert "dstbench_register_criteria" in HOOKS and "dstbench_run_end" in HOOKS
    assert len(HOOKS) == 13


def test_docs_hook_reference_is_current():
    assert hookdocs.update(DOC, check=True), (
        "docs/plugins.md's hook reference is stale: run python -m dstbench.hookdocs docs/plugins.md"
    )


def test_check_mode_detects_a_stale_reference(tmp_path):
    stale = tmp_path / "plugins.md"
    stale.write_text(DOC.read_text().replace("Register pruning criteria.", "Old text."))
    assert hookdocs.main(["--check", str(stale)]) == 1
    assert hookdocs.main([str(stale)]) == 0  # regenerates
    assert stale.read_text() == DOC.read_text()


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_documented_signature(name):
    fn = dict(hookdocs.hook_specs())[name]
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
    assert doc.splitlines()[0].endswith("."), f"{name}: the first line is a sentence"
    for param in inspect.signature(fn).parameters:
        assert f":param {param}:" in doc, f"{name} does not document its argument {param!r}"
    assert f"#### `{name}`" in DOC.read_text()


def _test_functions() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        names.update(n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    return names


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name):
    expected = "test_hook_" + name.removeprefix("dstbench_")
    assert expected in _test_functions(), f"add a test named {expected}"
