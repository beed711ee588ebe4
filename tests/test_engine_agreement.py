"""The batched and single engines on a quick-suite-sized study (the shipped quick suite, 159
runs, trimmed to 3 epochs with an update every 20 iterations), as the README states it:

- equal in every run: the status, the per-layer active counts (density) and every update's
  pruned and grown counts per layer, and the first update in full (what is regrown too: the
  masks before it are the same);
- equal only statistically: later updates can regrow different weights (rounding flips a
  near-tie in a selection), so accuracies differ run by run; ``dstbench compare`` finds no
  cell whose difference is significant;
- each record and each leaderboard says which engine made it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

QUICK = Path(__file__).resolve().parent.parent / "suites" / "quick.toml"


def dstbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _records(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "runs").glob("*.json"))}


@pytest.mark.slow
def test_engines_agree_on_the_quick_suite(tmp_path):
    text = QUICK.read_text()
    text = re.sub(r"(?m)^epochs = \d+$", "epochs = 3", text)
    text = re.sub(r"(?m)^update_period = \d+$", "update_period = 20", text)
    (tmp_path / "quick.toml").write_text(text)
    for engine in ("single", "batched"):
        args = ["quick.toml", "-j", "2", "--device", "cpu", "--engine", engine]
        result = dstbench("suite", *args, "--output", f"results/{engine}", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    single, batched = (_records(tmp_path / "results" / e) for e in ("single", "batched"))
    assert sorted(single) == sorted(batched) and len(single) == 159
    for run_id, a in single.items():
        b = batched[run_id]
        assert a["provenance"]["engine"] == "single"
        assert b["provenance"]["engine"] == "batched"
        assert a["status"] == b["status"] == "ok"
        assert a["density"] == b["density"]  # active counts, per layer
        counts = [
            [(u["pruned"], u["grown"], u["layers"]) for u in r["topology"]["per_update"]]
            for r in (a, b)
        ]
        assert counts[0] == counts[1]
        if a["topology"]["per_update"]:
            assert a["topology"]["per_update"][0] == b["topology"]["per_update"][0]

    compare = dstbench("compare", "results/single", "results/batched", cwd=tmp_path)
    assert compare.returncode == 0, compare.stderr
    summary = compare.stdout.strip().splitlines()[-1]
    expected = r"\d+ cells in both: 0 significantly higher in B, 0 lower; 0 only in A, 0 only"
    # (the time part compares the two engines' measured cost, which may differ as it likes)
    time_part = r"; time per step B/A: median [\d.]+×"
    assert re.fullmatch(expected + r" in B; 0 status change\(s\)" + time_part, summary), summary

    for engine in ("single", "batched"):
        board = (tmp_path / "results" / engine / "leaderboard.md").read_text()
        # the provenance header and the section's setup block
        assert len(re.findall(rf"(?m)^\| engine +\| {engine} +\|$", board)) == 2, engine
