"""Every example plugin in docs/plugins.md is a working plugin that passes the conformance kit."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from dstbench.conformance import check_plugin, format_report

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    if "@hookimpl" in block
]


def test_the_docs_have_an_example_per_kind_of_hook():
    text = "\n".join(BLOCKS)
    for hook in ("criteria", "growth", "schedules", "distributions", "models", "datasets"):
        assert f"def dstbench_register_{hook}(" in text
    assert "def dstbench_epoch_end(" in text


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_docs_example_plugin_conforms(index):
    module = types.ModuleType(f"docs_example_{index}")
    exec(compile(BLOCKS[index], f"docs/plugins.md example {index}", "exec"), module.__dict__)
    report = check_plugin(module, name=module.__name__)
    assert report.ok, format_report(report)
    assert report.components
