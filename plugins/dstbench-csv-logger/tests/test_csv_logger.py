"""Tests of the CSV logger: file contents against the run's own record, env var, concurrency."""

from __future__ import annotations

import csv
import multiprocessing
from pathlib import Path

import dstbench_csv_logger as plugin
import pytest

from dstbench.testing import check_plugin


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(autouse=True)
def _no_env_dir(monkeypatch):
    monkeypatch.delenv(plugin.DIR_ENV, raising=False)


def test_the_plugin_passes_the_conformance_kit():
    report = check_plugin(plugin)
    (hooks,) = report.components
    assert hooks.kind == "lifecycle hooks" and hooks.ok


def test_files_match_the_record(dstbench_plugins, dstbench_run, tmp_path):
    dstbench_plugins(plugin)
    record = dstbench_run(criterion="magnitude", growth="gradient", epochs=2)
    assert record["status"] == "ok"
    directory = tmp_path / "run-0"  # dstbench_run's artifact_dir: where the logger writes
    run_id = record["run_id"]

    epochs = read(directory / f"{run_id}.epochs.csv")
    curve = record["metrics"]["curve"]
    assert [int(r["epoch"]) for r in epochs] == [e["epoch"] for e in curve] == [1, 2]
    for row, stats in zip(epochs, curve, strict=True):
        assert float(row["train_loss"]) == stats["train_loss"]  # full precision
        assert float(row["val_accuracy"]) == stats["val_accuracy"]
        assert float(row["density"]) == pytest.approx(stats["density"])

    updates = read(directory / f"{run_id}.updates.csv")
    per_update = record["topology"]["per_update"]
    assert len({r["step"] for r in updates}) == len(per_update) == record["topology"]["updates"]
    for summary in per_update:
        rows = [r for r in updates if int(r["step"]) == summary["step"]]
        assert sum(int(r["pruned"]) for r in rows) == summary["pruned"]
        assert sum(int(r["grown"]) for r in rows) == summary["grown"]
        assert {r["layer"]: [int(r["pruned"]), int(r["grown"])] for r in rows} == summary["layers"]
        for r in rows:
            layer = record["density"]["layers"][r["layer"]]
            assert int(r["numel"]) == layer["numel"] and int(r["active"]) == layer["target"]

    (run,) = read(directory / "runs.csv")
    assert run["run_id"] == run_id and run["status"] == "ok"
    assert run["criterion"] == "magnitude" and run["growth"] == "gradient"
    assert float(run["test_accuracy"]) == record["metrics"]["test_accuracy"]
    assert int(run["pruned"]) == record["topology"]["pruned"]


def test_env_var_wins_and_a_rerun_replaces_its_files(
    dstbench_plugins, dstbench_run, tmp_path, monkeypatch
):
    dstbench_plugins(plugin)
    target = tmp_path / "csv"
    monkeypatch.setenv(plugin.DIR_ENV, str(target))
    first = dstbench_run(epochs=1)
    second = dstbench_run(epochs=1)  # same spec: same run id
    assert first["run_id"] == second["run_id"]
    assert len(read(target / f"{first['run_id']}.epochs.csv")) == 1  # rewritten, not appended
    assert len(read(target / "runs.csv")) == 2  # one row per finished run
    assert not list((tmp_path / "run-0").iterdir())  # nothing in the artifact dir


def test_dense_runs_write_no_update_file(dstbench_plugins, dstbench_run, tmp_path):
    dstbench_plugins(plugin)
    record = dstbench_run(method="dense", epochs=1)
    files = sorted(p.name for p in (tmp_path / "run-0").iterdir())
    assert files == [f"{record['run_id']}.epochs.csv", "runs.csv"]


def _append_many(path: str, worker: int) -> None:
    for i in range(200):
        plugin.ensure_header(Path(path), ("worker", "i", "payload"))
        plugin.append(Path(path), plugin.csv_text([(worker, i, "x" * 300)]))


def test_concurrent_writers_never_interleave_rows(tmp_path):
    path = tmp_path / "runs.csv"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    assert all(p.exitcode == 0 for p in workers)
    lines = path.read_text().splitlines()
    assert lines[0] == "worker,i,payload"  # one header, first
    rows = read(path)
    assert len(rows) == 600
    assert all(r["payload"] == "x" * 300 for r in rows)
    assert sorted((int(r["worker"]), int(r["i"])) for r in rows) == [
        (w, i) for w in range(3) for i in range(200)
    ]
