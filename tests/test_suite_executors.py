"""The executor protocol: a plugin executor runs a suite; the worker's command line runs one
job from a file, as a cluster executor would."""

from __future__ import annotations

import io
import json
from typing import ClassVar

from dstbench import hookimpl
from dstbench.contracts.spec import spec_hash
from dstbench.engine.spec import normalize_spec
from dstbench.suite import ExecutionOptions, Job, RunStore, load_suite, run_suite
from dstbench.suite.executors import Executor, Reporter
from dstbench.suite.worker import main as worker_main
from dstbench.suite.worker import run_job

SUITE = """
model = "mlp"
dataset = "digits"
epochs = 1
densities = [0.1, 0.2]
criteria = ["magnitude"]
executor = {name = "inline", tag = "t1"}
"""


class InlineExecutor:
    """Runs jobs one after the other in this process (what a cluster plugin would ship)."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, tag: str = "") -> None:
        self.tag = tag

    def run(self, jobs, options: ExecutionOptions, reporter: Reporter) -> None:
        InlineExecutor.calls.append(
            {"tag": self.tag, "jobs": len(jobs), "workers": options.workers}
        )
        for job in jobs:
            reporter.started(job.run_id, "inline")
            if job.spec["density"] == 0.2:
                reporter.finished(job.run_id, "node lost")  # its process died, no record
                continue
            run_job(job, options, progress=lambda e, n, r=job.run_id: reporter.progress(r, e, n))
            reporter.finished(job.run_id)


class InlinePlugin:
    @hookimpl
    def dstbench_register_executors(self, register):
        register("inline", InlineExecutor, description="in-process, for tests")


def test_a_plugin_executor_runs_the_suite(use_plugins, tmp_path):
    registry = use_plugins(("inline-executor", InlinePlugin())).registry
    (tmp_path / "s.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "s.toml", registry)
    assert suite.executor == {"name": "inline", "params": {"tag": "t1"}}
    assert isinstance(InlineExecutor(), Executor)
    InlineExecutor.calls.clear()
    outcome = run_suite(
        suite, output=tmp_path / "out", workers=3, stream=io.StringIO(), registry=registry
    )
    assert InlineExecutor.calls == [{"tag": "t1", "jobs": 2, "workers": 2}]
    assert outcome.counts() == {"ok": 1, "failed": 1}
    store = RunStore(tmp_path / "out")
    by_density = {
        store.load(c.run_id)["spec"]["density"]: store.load(c.run_id) for c in suite.cells
    }
    assert by_density[0.1]["execution"]["executor"] == "inline"
    assert by_density[0.2]["error"]["message"] == "node lost"
    assert not (tmp_path / "out" / "artifacts").exists()  # no observer wrote anything


def test_worker_command_line_runs_one_job_from_a_file(tmp_path, registry):
    spec = normalize_spec({"model": "mlp", "dataset": "digits", "epochs": 1}, registry)
    job = Job(spec_hash(spec), spec, str(tmp_path / "runs" / "x.json"), "label")
    options = ExecutionOptions(workers=8, device="cpu", executor="slurm")
    path = tmp_path / "job.json"
    path.write_text(
        json.dumps({"job": job.to_dict(), "options": options.to_dict(), "worker": "n7"})
    )
    assert worker_main([str(path)]) == 0
    record = json.loads((tmp_path / "runs" / "x.json").read_text())
    assert record["status"] == "ok" and record["run_id"] == job.run_id
    assert record["execution"]["executor"] == "slurm"
    assert record["execution"]["workers"] == 8
    assert record["execution"]["worker"] == "n7"
    assert worker_main([]) == 2


def test_a_worker_with_other_plugins_records_a_failure(tmp_path, registry):
    spec = normalize_spec({"model": "mlp", "dataset": "digits", "epochs": 1}, registry)
    spec_elsewhere = {**spec, "criterion": {"name": "not_here", "params": {}}}
    job = Job("abc", spec_elsewhere, str(tmp_path / "abc.json"), "label")
    assert run_job(job, ExecutionOptions(workers=1, device="cpu")) == "failed"
    record = json.loads((tmp_path / "abc.json").read_text())
    assert "SpecError: criterion: unknown criterion 'not_here'" in record["error"]["message"]
    # and a spec that normalizes to another id (e.g. other plugin defaults) is not trusted
    job = Job("abc", spec, str(tmp_path / "abc.json"), "label")
    assert run_job(job, ExecutionOptions(workers=1, device="cpu")) == "failed"
    message = json.loads((tmp_path / "abc.json").read_text())["error"]["message"]
    assert "do the driver and the workers load the same plugins?" in message
