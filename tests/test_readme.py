"""The README's examples do what it says."""

from __future__ import annotations

import re
import types
from pathlib import Path

from dstbench.conformance import check_plugin, format_report

README = (Path(__file__).parent.parent / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_quick_start_is_two_commands_the_suite_and_the_tests():
    quick_start = README.split("## Quick start", 1)[1]
    commands = re.search(r"```bash\n(.*?)```", quick_start, re.DOTALL).group(1).strip().splitlines()
    assert commands == [
        'pip install -e ".[test]" && dstbench suite suites/quick.toml',
        "pytest -n auto",
    ]
    assert (Path(__file__).parent.parent / "suites" / "quick.toml").is_file()


def test_the_plugin_example_is_a_conforming_plugin():
    (block,) = [b for b in PYTHON_BLOCKS if "@hookimpl" in b]
    module = types.ModuleType("readme_plugin")
    exec(compile(block, "README plugin example", "exec"), module.__dict__)
    report = check_plugin(module, name="readme-plugin")
    assert report.ok, format_report(report)


def test_the_python_api_example_runs():
    import torch

    (block,) = [b for b in PYTHON_BLOCKS if "dstbench.execute(" in b]
    torch.manual_seed(0)
    torch.randn(256, 64), torch.randn(256, 64)
    initial = int((torch.rand(256, 64) < 0.1).sum())
    torch.manual_seed(0)  # the example draws the same tensors
    namespace: dict = {}
    exec(compile(block, "README API example", "exec"), namespace)
    assert namespace["record"]["status"] == "ok"
    assert int(namespace["mask"].sum()) == initial  # pruned 100, grew 100


def test_the_run_example_prints_what_the_readme_shows(tmp_path, capsys):
    """The sample output of `dstbench run` is the command's real output (timing aside)."""
    from dstbench.cli import main

    block = README.split("dstbench run --model mlp --dataset digits --criterion magnitude", 1)[1]
    args_text, shown = block.split("\n# ", 1)
    args = ["--model", "mlp", "--dataset", "digits", "--criterion", "magnitude"]
    args += args_text.replace("\\\n", " ").split()
    args[args.index("--output") + 1] = str(tmp_path / "run.json")
    assert main(["run", *args]) == 0
    printed = capsys.readouterr().out.strip()
    shown = shown.splitlines()[0]

    def without_time(line: str) -> str:
        return re.sub(r"\| [0-9.]+s -> .*$", "", line)

    assert without_time(printed) == without_time(shown)
