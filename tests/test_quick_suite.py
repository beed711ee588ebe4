"""End to end: the README's quick start, ``dstbench suite suites/quick.toml``, through the
command line, on a copy of the suite trimmed to 3 epochs (an update every 20 iterations) so
that CI stays fast. The grid is the shipped one: six criteria, two growth methods, four
densities, three seeds, dense and static: 159 runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

QUICK = Path(__file__).resolve().parent.parent / "suites" / "quick.toml"
CRITERIA = ["magnitude", "set", "mest", "snip", "rsensitivity", "random"]


def dstbench(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def trimmed_quick(tmp_path):
    text = QUICK.read_text()
    text, n_epochs = re.subn(r"(?m)^epochs = \d+$", "epochs = 3", text)
    text, n_period = re.subn(r"(?m)^update_period = \d+$", "update_period = 20", text)
    assert n_epochs == n_period == 1, "quick.toml changed shape; update this test"
    path = tmp_path / "quick.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_quick_suite_end_to_end(tmp_path):
    trimmed_quick(tmp_path)
    result = dstbench("suite", "quick.toml", "-j", "2", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "suite quick: 159 runs: 159 done" in result.stdout
    root = tmp_path / "results" / "quick"
    assert len(list((root / "runs").glob("*.json"))) == 159

    board = (root / "leaderboard.md").read_text()
    assert "![mlp on digits: test accuracy vs density](leaderboard-mlp-on-digits.png)" in board
    assert (root / "leaderboard-mlp-on-digits.png").read_bytes()[:4] == b"\x89PNG"
    for growth in ("random", "gradient"):
        section = board.split(f"### mlp on digits, growth: {growth}", 1)[1].lstrip("\n")
        table = section.split("\n\n", 1)[0]  # the accuracy table; the paired one follows
        lines = [line for line in table.splitlines() if line.startswith("|")]
        header = [cell.strip() for cell in lines[0].strip("|").split("|")]
        assert header == ["method", "d=0.02", "d=0.05", "d=0.1", "d=0.2", "avg rank [95% CI]"]
        assert "Paired difference to magnitude" in section.split("<details>", 1)[0]
        labels = [line.strip("|").split("|")[0].strip() for line in lines[2:]]
        assert labels == ["dense", "static", *CRITERIA]
        for line in lines[2:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")[1:5]]
            # every cell complete: mean ± 95% t interval over the three seeds, no (k/n); a
            # collapsed run is marked †k, an interval too wide to rank ‡
            pattern = r"(\*\*)?\d+\.\d\d ± \d+\.\d\d(\*\*)?( †[123])?( ‡)?"
            assert all(re.fullmatch(pattern, c) for c in cells), cells
        bold = sum(line.count("**") // 2 for line in lines[2:])
        assert bold >= 4  # at least one best cell per density
    assert "Not averaged in" not in board

    check = dstbench("leaderboard", "results/quick", "--check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout
    again = dstbench("suite", "quick.toml", "--dry-run", cwd=tmp_path)
    assert again.stdout.strip().splitlines()[-1] == (
        "suite quick: 159 runs: 159 done; 0 would run (results in results/quick)"
    )
