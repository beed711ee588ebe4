"""In-run checkpoints: a run interrupted anywhere and resumed writes the record an
uninterrupted run writes (bit for bit on CPU, timings aside)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dstbench import hookimpl
from dstbench.contracts import ExecutionOptions, Job
from dstbench.engine.checkpoint import FORMAT, write
from dstbench.engine.interrupt import INTERRUPTED_EXIT, RunInterrupted, clear_stop, request_stop
from dstbench.engine.single import train_run
from dstbench.engine.spec import build_spec
from dstbench.suite.worker import checkpoint_path

SPEC = {
    "model": "mlp[hidden=[16]]",
    "dataset": "digits",
    "epochs": 3,
    "update_period": 7,
    "criterion": "snip",
    "compare_criteria": ["magnitude", "snip"],
    "seed": 5,
}


def _comparable(record: dict) -> dict:
    """A record without what depends on when and where it ran (as JSON reads it back)."""
    record = json.loads(json.dumps(record))
    out = {
        k: v
        for k, v in record.items()
        if k not in ("timings", "provenance", "checkpoint", "digest")
    }
    out["metrics"] = {**record["metrics"]}
    out["metrics"]["curve"] = [
        {k: v for k, v in epoch.items() if k != "seconds"} for epoch in record["metrics"]["curve"]
    ]
    return out


class StopAt:
    """Asks the run to stop after the topology update at ``step`` (or at the end of epoch
    ``epoch``): it stops at the next iteration, mid-epoch."""

    def __init__(self, step: int | None = None, epoch: int | None = None) -> None:
        self.step, self.epoch = step, epoch

    @hookimpl
    def dstbench_topology_update(self, run, update):
        if update.step == self.step:
            request_stop()

    @hookimpl
    def dstbench_epoch_end(self, run, epoch):
        if epoch.epoch == self.epoch:
            request_stop()


def _train(plugins, path: Path | None, every: int | None = 0):
    spec = build_spec(SPEC, plugins.registry)
    return train_run(
        spec, plugins=plugins, device=torch.device("cpu"), checkpoint=path, checkpoint_every=every
    )


@pytest.fixture(scope="module")
def reference():
    from dstbench.plugins import get_plugins

    record = _train(get_plugins(), None).to_json()
    assert record["status"] == "ok" and record["topology"]["updates"] > 10
    return record


@pytest.mark.parametrize(
    "stops",
    [
        [StopAt(step=7)],  # the 8th iteration of epoch 1
        [StopAt(epoch=1)],  # the first iteration of epoch 2
        [StopAt(step=56), StopAt(step=119)],  # twice, in epochs 2 and 3
    ],
    ids=["mid-epoch-1", "epoch-boundary", "twice"],
)
def test_an_interrupted_run_resumes_to_the_same_record(use_plugins, tmp_path, reference, stops):
    path = tmp_path / f"{reference['run_id']}.pt"
    for i, stop in enumerate(stops):
        plugins = use_plugins((f"stop{i}", stop))
        clear_stop()
        with pytest.raises(RunInterrupted):
            _train(plugins, path)
        clear_stop()
        assert path.exists()
    resumed = _train(use_plugins(), path).to_json()
    assert _comparable(resumed) == _comparable(reference)
    assert len(resumed["checkpoint"]["resumed"]) == len(stops)
    per_epoch = reference["timings"]["steps"] // SPEC["epochs"]
    first = stops[0]
    assert resumed["checkpoint"]["resumed"][0]["step"] == (first.step or per_epoch * first.epoch)


def test_periodic_checkpoints_do_not_change_the_result(tmp_path, reference):
    from dstbench.plugins import get_plugins

    path = tmp_path / f"{reference['run_id']}.pt"
    record = _train(get_plugins(), path, every=1).to_json()
    assert _comparable(record) == _comparable(reference)
    assert path.exists()  # the worker removes it once the record is written


@pytest.mark.parametrize("bad", ["garbage", "other-run", "other-version"])
def test_a_bad_checkpoint_is_discarded_and_the_run_starts_over(tmp_path, reference, bad):
    from dstbench.plugins import get_plugins

    path = tmp_path / f"{reference['run_id']}.pt"
    if bad == "garbage":
        path.write_bytes(b"\x00not a checkpoint")
    elif bad == "other-run":
        write(path, "0123456789abcdef", {"epoch": 1})
    else:
        torch.save({"format": FORMAT + 1, "dstbench": "0.0.1", "run_id": reference["run_id"]}, path)
    record = _train(get_plugins(), path).to_json()
    assert "discarded" in record["checkpoint"]
    assert _comparable(record) == _comparable(reference)


def test_a_checkpoint_that_does_not_fit_is_discarded(tmp_path, reference):
    from dstbench.plugins import get_plugins

    path = tmp_path / f"{reference['run_id']}.pt"
    position = {"epoch": 1, "batches_done": 0, "step": 40}
    write(path, reference["run_id"], {**position, "model": {"nope": torch.zeros(1)}}, seed=5)
    record = _train(get_plugins(), path).to_json()
    assert record["status"] == "ok"
    assert record["checkpoint"]["discarded"].startswith("does not fit the run")
    assert _comparable(record) == _comparable(reference)


def _job_file(tmp_path: Path, registry, epochs: int) -> tuple[Path, Job]:
    spec = build_spec({**SPEC, "epochs": epochs}, registry)
    (tmp_path / "runs").mkdir(exist_ok=True)
    job = Job(spec.run_id, spec, str(tmp_path / "runs" / f"{spec.run_id}.json"), spec.label)
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=1)
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"job": job.to_dict(), "options": options.to_dict()}))
    return path, job


def _worker(job_file: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dstbench.suite.worker", str(job_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_killed_worker_resumes_from_its_checkpoint(tmp_path, registry, how):
    """SIGTERM: the worker checkpoints at once and exits 75 ("resume me"); SIGKILL: the next
    attempt resumes from the last periodic checkpoint. Either way: the uninterrupted record."""
    epochs = 6
    from dstbench.plugins import get_plugins

    expected = train_run(
        build_spec({**SPEC, "epochs": epochs}, registry),
        plugins=get_plugins(),
        device=torch.device("cpu"),
    ).to_json()
    job_file, job = _job_file(tmp_path, registry, epochs)
    checkpoint = checkpoint_path(job)
    process = _worker(job_file)
    _wait_for(checkpoint, process)
    process.send_signal(getattr(signal, how))
    process.communicate(timeout=60)  # waits, and closes the pipes
    code = process.returncode
    assert code == (INTERRUPTED_EXIT if how == "SIGTERM" else -signal.SIGKILL)
    assert checkpoint.exists() and not Path(job.record_path).exists()
    again = _worker(job_file)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()
    record = json.loads(Path(job.record_path).read_text())
    assert record["checkpoint"]["resumed"]
    assert not checkpoint.exists()  # removed once the record is written
    got, want = _comparable(record), {**_comparable(expected), "execution": record["execution"]}
    assert got == want
