"""Every shipped suite that needs no download runs end to end, with both built-in engines, on a
copy trimmed to 2 epochs (an update every 5 iterations): every run ends ``ok``, and the
analysis its header names gives every part of the study. ``quick.toml`` has its own, fuller
test (``tests/test_quick_suite.py``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dstbench.plugins import get_plugins
from dstbench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
#: Datasets that ship with dstbench (nothing to download).
EMBEDDED = {"digits"}
#: Shipped suites that run without a download and the test that runs each end to end.
COVERED = {"quick.toml": "tests/test_quick_suite.py", "jaccard.toml": "this file"}


def _no_download() -> list[Path]:
    registry = get_plugins().registry
    return [
        path
        for path in sorted(SUITES.glob("*.toml"))
        if {c.spec["dataset"]["name"] for c in load_suite(path, registry).cells} <= EMBEDDED
    ]


def test_every_suite_without_a_download_is_run_by_a_test():
    assert sorted(p.name for p in _no_download()) == sorted(COVERED)


def dstbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def trimmed(path: Path, into: Path) -> Path:
    """``path`` with 2 epochs and an update every 5 iterations (at least one update)."""
    text = path.read_text()
    text = re.sub(r"(?m)^update_period = \d+$", "update_period = 5", text)
    text = re.sub(r"(?m)^epochs = \d+$", "epochs = 2", text)
    if not re.search(r"(?m)^epochs = ", text):
        text = re.sub(r"(?m)^(model = .*)$", r"\1\nepochs = 2", text, count=1)
    out = into / path.name
    out.write_text(text)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["single", "batched"])
def test_jaccard_suite_end_to_end(tmp_path, engine):
    trimmed(SUITES / "jaccard.toml", tmp_path)
    args = ["jaccard.toml", "-j", "2", "--device", "cpu", "--engine", engine]
    result = dstbench("suite", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "suite jaccard: 70 runs: 70 done" in result.stdout
    root = tmp_path / "results" / "jaccard"
    records = [json.loads(p.read_text()) for p in (root / "runs").glob("*.json")]
    assert [r["status"] for r in records] == ["ok"] * 70
    at_init = [r for r in records if r["spec"].get("jaccard_at_init")]
    assert len(at_init) == 40
    trained_engines = {r["provenance"]["engine"] for r in records if r not in at_init}
    assert trained_engines == {engine}
    assert {r["provenance"]["engine"] for r in at_init} == {"single"}

    status = dstbench("status", "jaccard.toml", cwd=tmp_path)
    rows = [line.split() for line in status.stdout.splitlines() if line.startswith("mlp/digits")]
    assert sorted((row[1], row[2], row[3]) for row in rows) == [
        ("jaccard_at_init=false", "30", "30"),
        ("jaccard_at_init=true", "40", "40"),
    ]

    overlap = dstbench("analyze", "overlap", "results/jaccard", cwd=tmp_path)
    assert overlap.returncode == 0, overlap.stderr
    text = (root / "overlap.md").read_text()
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    at_init_titles = [t for t in titles if "at initialisation" in t]
    assert len(at_init_titles) == 8  # densities 0.2 and 1.0, four values of ζ
    during = [t for t in titles if "during training" in t]
    assert during == ["## mlp on digits, d=0.2, during training"]
    assert "is missing" not in text and "is incomplete" not in text
    # Fig. 6a's headline: magnitude and SET nearly coincide at initialisation
    section = text.split("## mlp on digits, d=0.2, at initialisation, ζ=0.5", 1)[1]
    pooled = section.split("Pooled over layers:", 1)[1].split("\n\n")[1].splitlines()
    header = [c.strip() for c in pooled[0].strip("|").split("|")]
    matrix = {
        cells[0]: dict(zip(header[1:], map(float, cells[1:]), strict=True))
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in pooled[2:])
    }
    assert matrix["magnitude"]["magnitude"] == 1
    assert matrix["magnitude"]["set"] > 0.9
    assert matrix["set"]["magnitude"] == matrix["magnitude"]["set"]
