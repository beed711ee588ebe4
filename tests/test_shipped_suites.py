"""Every suite shipped in suites/ validates against the real registry and expands to the run
count its header comment states."""

from __future__ import annotations

from pathlib import Path

import pytest

from dstbench.cli import main
from dstbench.plugins import get_plugins
from dstbench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
SHIPPED = sorted(SUITES.glob("*.toml"))

#: The run counts stated in each suite's header comment.
EXPECTED_RUNS = {
    "quick.toml": 159,
    "cifar.toml": 3050,
    "fashion_mnist.toml": 610,
    "tiny_imagenet.toml": 610,
    "higgs.toml": 610,
    "update_period.toml": 2945,
    "jaccard.toml": 70,
}


def test_every_shipped_suite_has_an_expected_count():
    assert sorted(p.name for p in SHIPPED) == sorted(EXPECTED_RUNS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_suite_dry_run(path, tmp_path, capsys):
    code = main(["suite", str(path), "--dry-run", "--output", str(tmp_path / "results")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    runs = EXPECTED_RUNS[path.name]
    last_line = captured.out.strip().splitlines()[-1]
    assert last_line.startswith(f"suite {path.stem}: {runs} runs: {runs} to run;")
    assert captured.err == ""  # no warning (e.g. an exclude that matches nothing)
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_update_period_suite_shares_its_delta_t_800_runs_with_cifar():
    registry = get_plugins().registry
    cifar = {c.run_id for c in load_suite(SUITES / "cifar.toml", registry).cells}
    sweep = load_suite(SUITES / "update_period.toml", registry).cells
    at_800 = {c.run_id for c in sweep if c.spec["update_period"] in (800, None)}
    assert len(at_800) == 3 * (2 * 5 * 2 * 5) + 3 * 15
    assert at_800 <= cifar
