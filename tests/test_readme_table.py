"""The README's example table is a real run's: the quick suite's gradient-growth runs (the
same run ids as in the full suite) trained as the README says (the default single engine,
two workers on the CPU), rendered with ``--stat std``, give the README's cells, bold and
marks included. The README names the torch version and engine that made it; this test
checks that the installed torch is that version, as the numbers depend on it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the markdown table that starts with ``header``: label -> the 4 cells."""
    lines = text.split(header, 1)[1].splitlines()
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:5]
    return rows


def test_the_readme_names_what_made_its_table():
    made = re.search(r"made with torch (\S+) \(([^)]*)\) and the (\w+) engine", README)
    assert made is not None, "the README must say which torch and engine made its table"
    assert made.group(3) == "single"  # the default engine of `dstbench suite`


@pytest.mark.slow
def test_the_readme_table_is_a_real_run(tmp_path):
    version = re.search(r"made with torch (\S+) ", README)
    assert version is not None
    if torch.__version__.split("+")[0] != version.group(1):
        pytest.skip(f"the README's table was made with torch {version.group(1)}")
    text = (ROOT / "suites" / "quick.toml").read_text()
    text, n = re.subn(r'(?m)^growth = \["random", "gradient"\]$', 'growth = "gradient"', text)
    assert n == 1, "quick.toml changed shape; update this test"
    (tmp_path / "quick.toml").write_text(text)
    run = [sys.executable, "-m", "dstbench"]
    suite = subprocess.run(
        [*run, "suite", "quick.toml", "-j", "2", "--device", "cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert suite.returncode == 0, suite.stdout + suite.stderr
    board = subprocess.run(
        [*run, "leaderboard", "results/quick", "--stat", "std", "-o", "board.md"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert board.returncode == 0, board.stderr
    produced = (tmp_path / "board.md").read_text()
    section = produced.split("### mlp on digits, growth: gradient", 1)[1]
    real = _rows(section, "| method ")
    shown = _rows(README, "| growth: gradient ")
    assert shown == real
