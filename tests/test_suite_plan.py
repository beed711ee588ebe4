"""What a suite invocation runs, and how --dry-run shows it (records made by hand)."""

from __future__ import annotations

import re

import pytest
from handmade import new_record

from dstbench.cli import main
from dstbench.suite import RunStore, load_suite, plan

SUITE = """
model = "mlp"
dataset = "digits"
densities = [0.1, 0.2]
criteria = ["magnitude", "snip"]
seeds = [0]
baselines = ["static"]
"""


@pytest.fixture
def suite(tmp_path, monkeypatch, registry):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(SUITE)
    return load_suite(tmp_path / "s.toml", registry)


def mark(store, cell, status):
    record = new_record(cell.spec, cell.run_id)
    record["status"] = status
    if status == "ok":
        record["metrics"]["test_accuracy"] = 0.9  # an ok record without one is not trusted
    store.write(record)


def test_missing_and_failed_runs_run_finished_ones_do_not(suite, tmp_path):
    store = RunStore(tmp_path / "results" / "s")
    cells = suite.cells  # static 0.1, static 0.2, then 4 DST runs
    assert len(cells) == 6
    for cell, status in zip(cells, ["ok", "failed", "diverged", "invalid"], strict=False):
        mark(store, cell, status)
    planned = plan(suite, store)
    assert [(p.status, p.will_run) for p in planned] == [
        ("ok", False),
        ("failed", True),
        ("diverged", False),
        ("invalid", False),
        ("missing", True),
        ("missing", True),
    ]
    again = plan(suite, store, retry=["diverged", "invalid"])
    assert [p.will_run for p in again] == [False, True, True, True, True, True]


def test_dry_run_shows_each_status_and_the_counts(suite, tmp_path, capsys):
    store = RunStore(tmp_path / "results" / "s")
    for cell, status in zip(suite.cells, ["ok", "failed", "diverged"], strict=False):
        mark(store, cell, status)
    before = sorted(p.name for p in store.runs.iterdir())
    assert main(["suite", "s.toml", "--dry-run", "--retry", "diverged"]) == 0
    out = capsys.readouterr().out.splitlines()
    statuses = [line.split()[1:3] for line in out[2:8]]
    assert statuses == [
        ["done", suite.cells[0].run_id],
        ["failed", suite.cells[1].run_id],
        ["diverged", "(retry)"],
        ["to", "run"],
        ["to", "run"],
        ["to", "run"],
    ]
    assert out[-1] == (
        "suite s: 6 runs: 1 done, 1 failed, 1 diverged, 3 to run; 5 would run "
        "(results in results/s)"
    )
    assert sorted(p.name for p in store.runs.iterdir()) == before


def test_dry_run_without_the_data_knows_a_builtin_datasets_steps_and_macs(
    tmp_path, monkeypatch, capsys
):
    """CIFAR-10's shape and size are known without its files: 45,000 training images after
    the engine's 10% validation carve, 352 batches of 128 per epoch; a short probe times a
    step."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DSTBENCH_DATA", str(tmp_path / "no-data"))
    (tmp_path / "c.toml").write_text(
        'model = "mlp_cifar"\ndataset = "cifar10"\nepochs = 2\ndensities = [0.1]\n'
        'criteria = ["magnitude"]\ngrowth = ["random"]\nseeds = [0]\n'
    )
    assert main(["suite", "c.toml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if line.startswith("mlp_cifar/cifar10 (")]
    _, runs, to_run, steps, macs, wall, source = re.split(r"\s{2,}", row)
    assert (runs, to_run, steps) == ("1", "1", str(2 * 352)), row
    assert macs.endswith(" T") or macs.endswith(" G"), row  # dense forward MACs per run
    assert wall != "unknown" and source.startswith("a probe: steps on random inputs"), row
    assert not (tmp_path / "results").exists()
