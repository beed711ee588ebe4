"""The README's examples do what it says."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

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


def test_the_command_list_names_every_command():
    from dstbench.cli.commands import COMMANDS

    listing = README.split("## Command line", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    listed = [line.split()[1] for line in listing.splitlines() if line.startswith("dstbench ")]
    assert listed == list(COMMANDS)


@pytest.mark.parametrize(
    ("shown_before", "args", "suite"),
    [
        ("$ dstbench run --model mlp --dataset digits --criterion magnitud\n", None, None),
        (
            "nothing is written:\n`",
            ["suite", "suites/x.toml"],
            'model = "mlp"\ndataset = "digits"\ncriteria = ["magnitude", "magnitue"]\n',
        ),
    ],
    ids=["run", "suite"],
)
def test_the_typo_examples_show_the_real_message(
    shown_before, args, suite, tmp_path, monkeypatch, capsys
):
    """The typo examples are the commands' real lines, registered list included."""
    from dstbench.cli import main

    shown = README.split(shown_before, 1)[1].splitlines()[0].strip("`")
    if args is None:
        args = ["run", "--model", "mlp", "--dataset", "digits", "--criterion", "magnitud"]
        shown = shown.removeprefix("dstbench: error: ")
    else:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "suites").mkdir()
        (tmp_path / "suites" / "x.toml").write_text(suite)
    assert main(args) == 2
    assert capsys.readouterr().err == f"dstbench: error: {shown}\n"


@pytest.mark.slow
def test_the_test_count_is_todays():
    """The Quick start's "about N" tests is within a tenth of what pytest collects."""
    import subprocess
    import sys

    stated = int(re.search(r"runs the tests \(about (\d+),", README)[1])
    collected = (
        subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            cwd=Path(__file__).parent.parent,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    count = int(re.match(r"(\d+) tests collected", collected)[1])
    assert abs(count - stated) <= count / 10, (stated, collected)
