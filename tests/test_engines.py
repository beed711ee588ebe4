"""Engines are a component kind: the built-in ``single`` and ``batched``, and plugin engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from dstbench import hookimpl
from dstbench.contracts import ExecutionOptions, Job
from dstbench.engine.single import SingleEngine
from dstbench.engine.spec import build_spec
from dstbench.errors import SuiteError
from dstbench.suite.loader import build_suite
from dstbench.suite.worker import run_group

SPEC = {"model": "mlp[hidden=[16]]", "dataset": "digits", "epochs": 1, "update_period": 10}


class CountingEngine(SingleEngine):
    """The single engine, counting what it is given (a plugin engine)."""

    calls: ClassVar[list[list[str]]] = []

    def run(self, requests, options, plugins):
        CountingEngine.calls.append([r.spec.run_id for r in requests])
        yield from super().run(requests, options, plugins)


def _jobs(tmp_path: Path, registry, seeds=(0, 1)) -> list[Job]:
    jobs = []
    for seed in seeds:
        spec = build_spec({**SPEC, "seed": seed}, registry)
        path = tmp_path / "runs" / f"{spec.run_id}.json"
        jobs.append(Job(spec.run_id, spec, str(path), spec.label))
    (tmp_path / "runs").mkdir(parents=True, exist_ok=True)
    return jobs


def test_hook_register_engines(use_plugins, tmp_path):
    class Plugin:
        @hookimpl
        def dstbench_register_engines(self, register):
            register("counting", CountingEngine, description="counts its runs")

    loaded = use_plugins(("engines-plugin", Plugin()))
    assert loaded.records["engines-plugin"].registered == {"engines": ["counting"]}
    assert set(loaded.registry.engines) == {"single", "batched", "sparse", "counting"}
    jobs = _jobs(tmp_path, loaded.registry)
    CountingEngine.calls = []
    statuses = run_group(jobs, ExecutionOptions(workers=1, device="cpu", engine="counting"))
    assert statuses == ["ok", "ok"]
    assert CountingEngine.calls == [[j.run_id for j in jobs]]
    for job in jobs:
        record = json.loads(Path(job.record_path).read_text())
        assert record["run_id"] == job.run_id
        assert record["execution"]["engine"] == "counting"


def test_the_engine_is_an_execution_option_not_part_of_the_run(registry, tmp_path):
    """Same runs through both built-in engines: same ids, same counts; provenance differs."""
    single_dir, batched_dir = tmp_path / "single", tmp_path / "batched"
    single_jobs, batched_jobs = _jobs(single_dir, registry), _jobs(batched_dir, registry)
    assert [j.run_id for j in single_jobs] == [j.run_id for j in batched_jobs]
    run_group(single_jobs, ExecutionOptions(workers=1, device="cpu", engine="single"))
    run_group(batched_jobs, ExecutionOptions(workers=1, device="cpu", engine="batched"))
    for one, other in zip(single_jobs, batched_jobs, strict=True):
        a = json.loads(Path(one.record_path).read_text())
        b = json.loads(Path(other.record_path).read_text())
        assert a["spec"] == b["spec"] and a["status"] == b["status"] == "ok"
        assert a["topology"]["per_update"] == b["topology"]["per_update"]
        assert (a["provenance"]["engine"], b["provenance"]["engine"]) == ("single", "batched")
        assert b["metrics"]["test_accuracy"] == pytest.approx(
            a["metrics"]["test_accuracy"], abs=0.02
        )


def test_engines_group_jobs_their_own_way(registry, tmp_path):
    jobs = _jobs(tmp_path, registry, seeds=(0, 1, 2, 3))
    single = registry.engines["single"].fn()
    batched = registry.engines["batched"].fn()
    assert single.groups(jobs, 0, 2) == [[j] for j in jobs]
    assert [len(g) for g in batched.groups(jobs, 0, 2)] == [2, 2]
    assert [len(g) for g in batched.groups(jobs, 3, 1)] == [2, 2]  # evenly spread


def test_an_unknown_engine_is_one_line_listing_the_registered_ones(registry):
    data = {"name": "s", "model": "mlp", "dataset": "digits", "engine": "bached"}
    with pytest.raises(SuiteError) as info:
        build_suite(data, registry, path=Path("s.toml"))
    message = str(info.value)
    assert message.startswith("s.toml: engine: unknown engine 'bached'")
    assert "did you mean 'batched'" in message and "'single'" in message
    assert "\n" not in message


def test_an_unknown_engine_on_the_command_line(capsys, tmp_path):
    from dstbench.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nmodel = "mlp"\ndataset = "digits"\n')
    assert main(["suite", str(suite), "--engine", "nope", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dstbench: error: --engine: unknown engine 'nope'")
    assert not (tmp_path / "out").exists()
