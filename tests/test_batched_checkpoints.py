"""In-run checkpoints of batched groups: a group interrupted anywhere (a stop request, a kill)
and resumed writes the records the uninterrupted group writes (bit for bit on CPU, timings
aside), one checkpoint per run in the single engine's format."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_batched_engine import _assert_same_record
from test_checkpoints import StopAt, _comparable

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.batched.engine import train_group
from dstbench.engine import checkpoint as checkpoints
from dstbench.engine.interrupt import RunInterrupted, clear_stop
from dstbench.engine.single import train_run
from dstbench.engine.spec import build_spec

BASE = {"model": "mlp[hidden=[16]]", "dataset": "digits", "epochs": 3, "update_period": 7}
#: Three runs of one group: other seeds, criteria, growth and densities.
SPECS = [
    {**BASE, "criterion": "snip", "compare_criteria": ["magnitude", "snip"], "seed": 5},
    {**BASE, "criterion": "magnitude", "growth": "random", "seed": 6},
    {**BASE, "criterion": "set", "density": 0.2, "seed": 7},
]


class Diverge:
    """Makes run ``run_id``'s weights NaN at its update at ``step``: it diverges there and
    leaves the stack, and the group's checkpoints must keep its end for its record."""

    def __init__(self, run_id: str, step: int) -> None:
        self.run_id, self.step = run_id, step

    @hookimpl
    def dstbench_topology_update(self, run, update):
        if run.run_id == self.run_id and update.step == self.step:
            layer = run.masker.layers[0]
            with torch.no_grad():
                layer.weight[layer.mask] = math.nan


def _train(plugins, paths: list[Path] | None, every: int | None = 0) -> list[dict]:
    specs = [build_spec(spec, plugins.registry) for spec in SPECS]
    records = train_group(
        specs,
        plugins=plugins,
        device=torch.device("cpu"),
        checkpoints=paths,
        checkpoint_every=every,
    )
    return [record.to_json() for record in records]


def _paths(tmp_path: Path, registry) -> list[Path]:
    return [tmp_path / f"{build_spec(spec, registry).run_id}.pt" for spec in SPECS]


@pytest.fixture(scope="module")
def reference() -> list[dict]:
    from dstbench.plugins import get_plugins

    records = _train(get_plugins(), None)
    assert [r["status"] for r in records] == ["ok"] * 3
    assert all(r["topology"]["updates"] > 10 for r in records)
    return records


@pytest.mark.parametrize(
    "stops",
    [
        [StopAt(step=7)],  # the 8th iteration of epoch 1
        [StopAt(epoch=1)],  # the first iteration of epoch 2
        [StopAt(step=56), StopAt(step=119)],  # twice, in epochs 2 and 3
    ],
    ids=["mid-epoch-1", "epoch-boundary", "twice"],
)
def test_an_interrupted_group_resumes_to_the_same_records(
    use_plugins, tmp_path, registry, reference, stops
):
    paths = _paths(tmp_path, registry)
    for i, stop in enumerate(stops):
        plugins = use_plugins((f"stop{i}", stop))
        clear_stop()
        with pytest.raises(RunInterrupted) as interrupted:
            _train(plugins, paths)
        clear_stop()
        assert interrupted.value.checkpoint == str(paths[0])
        assert all(path.exists() for path in paths)
    resumed = _train(use_plugins(), paths)
    per_epoch = reference[0]["timings"]["steps"] // BASE["epochs"]
    first = stops[0]
    for got, want in zip(resumed, reference, strict=True):
        assert _comparable(got) == _comparable(want)
        assert len(got["checkpoint"]["resumed"]) == len(stops)
        assert got["checkpoint"]["resumed"][0]["step"] == (first.step or per_epoch * first.epoch)


def test_the_resumed_group_agrees_with_the_single_engine(use_plugins, tmp_path, registry):
    paths = _paths(tmp_path, registry)
    clear_stop()
    with pytest.raises(RunInterrupted):
        _train(use_plugins(("stop", StopAt(step=56))), paths)
    clear_stop()
    resumed = _train(use_plugins(), paths)
    plugins = dstbench.plugins.get_plugins()
    for spec, got in zip(SPECS, resumed, strict=True):
        single = train_run(
            build_spec(spec, registry), plugins=plugins, device=torch.device("cpu")
        ).to_json()
        _assert_same_record(got, single)


def test_a_run_that_ended_before_the_interruption_keeps_its_record(
    use_plugins, tmp_path, registry, reference
):
    paths = _paths(tmp_path, registry)
    run_id = reference[1]["run_id"]
    uninterrupted = _train(use_plugins(("nan", Diverge(run_id, 35))), None)
    assert [r["status"] for r in uninterrupted] == ["ok", "diverged", "ok"]
    clear_stop()
    with pytest.raises(RunInterrupted):
        _train(use_plugins(("nan", Diverge(run_id, 35)), ("stop", StopAt(step=70))), paths)
    clear_stop()
    ended, _ = checkpoints.read(paths[1], run_id)
    assert ended is not None and ended["finished"]["status"] == "diverged"
    # The single engine cannot train on from a run's end: it discards it (a copy) and starts over.
    spec = build_spec(SPECS[1], registry)
    copy = tmp_path / "single" / paths[1].name
    copy.parent.mkdir()
    copy.write_bytes(paths[1].read_bytes())
    single = train_run(spec, plugins=use_plugins(), device=torch.device("cpu"), checkpoint=copy)
    assert single.to_json()["checkpoint"]["discarded"].startswith("it holds the end (diverged)")
    # The run that ended is not trained again: nothing makes it diverge this time.
    resumed = _train(use_plugins(), paths)
    for got, want in zip(resumed, uninterrupted, strict=True):
        assert _comparable(got) == _comparable(want)
        assert got["checkpoint"]["resumed"]


class Noisy:
    """A tiny dataset whose training batches are augmented from the run's data generator."""

    @staticmethod
    def load(ctx) -> DatasetParts:
        g = torch.Generator().manual_seed(3)
        x, y = torch.randn(400, 32, generator=g), torch.randint(0, 4, (400,), generator=g)

        def jitter(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return batch + 0.1 * torch.randn(batch.shape, generator=generator)

        return DatasetParts(
            train=TensorSplit(x[:320], y[:320]),
            test=TensorSplit(x[320:], y[320:]),
            input_shape=(32,),
            num_classes=4,
            train_transform=jitter,
        )

    @hookimpl
    def dstbench_register_datasets(self, register):
        register("noisy", self.load, description="random tensors, augmented with noise")


def test_a_group_resumed_mid_epoch_replays_its_augmentation_draws(use_plugins, tmp_path):
    noisy = {"dataset": "noisy", "model": "mlp[hidden=[16]]", "epochs": 2, "batch_size": 16}
    specs = [
        {**noisy, "criterion": "snip", "update_period": 5, "seed": 1},
        {**noisy, "criterion": "set", "update_period": 5, "seed": 2},
    ]
    plugins = use_plugins(("noisy", Noisy()))
    built = [build_spec(spec, plugins.registry) for spec in specs]
    paths = [tmp_path / f"{spec.run_id}.pt" for spec in built]

    def train(plugins, paths):
        records = train_group(built, plugins=plugins, device=torch.device("cpu"), checkpoints=paths)
        return [record.to_json() for record in records]

    reference = train(plugins, None)
    clear_stop()
    with pytest.raises(RunInterrupted):
        train(use_plugins(("noisy", Noisy()), ("stop", StopAt(step=25))), paths)
    clear_stop()
    resumed = train(use_plugins(("noisy", Noisy())), paths)
    for got, want in zip(resumed, reference, strict=True):
        assert got["status"] == "ok"
        assert got["checkpoint"]["resumed"][0]["batches_done"] == 7  # 18 batches an epoch
        assert _comparable(got) == _comparable(want)


def test_every_run_of_a_group_checkpoints_every_epoch_under_its_own_name(tmp_path, registry):
    """Periodic checkpoints in a worker: one file per run after each epoch, each readable by
    the single engine's reader, all removed once the records are written."""
    from dstbench.contracts import ExecutionOptions, Job
    from dstbench.suite.worker import checkpoint_path, run_group

    seen: dict[str, list[int]] = {}

    class Look:
        @hookimpl
        def dstbench_epoch_end(self, run, epoch):
            if run.run_id == jobs[-1].run_id:  # the group's runs have all ended the epoch
                for job in jobs:
                    data, problem = checkpoints.read(checkpoint_path(job), job.run_id)
                    assert problem is None
                    seen.setdefault(job.run_id, []).append(data["epoch"] if data else 0)

    specs = [build_spec(spec, registry) for spec in SPECS]
    (tmp_path / "runs").mkdir()
    jobs = [Job(s.run_id, s, str(tmp_path / "runs" / f"{s.run_id}.json"), s.label) for s in specs]
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=1, engine="batched")
    previous = dstbench.plugins.get_plugins()
    try:
        dstbench.plugins.set_plugins(
            dstbench.plugins.load_plugins(
                extra=[("look", Look())], env={"DSTBENCH_LOAD_PLUGINS": "look"}
            )
        )
        assert run_group(jobs, options) == ["ok"] * 3
    finally:
        dstbench.plugins.set_plugins(previous)
    # At the end of epoch e the files hold epoch e - 1 (the one of epoch e comes after the
    # hooks); none is written after the last epoch.
    assert seen == {job.run_id: [0, 1, 2] for job in jobs}
    assert not list((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_a_damaged_checkpoint_of_one_run_starts_the_group_over(
    use_plugins, tmp_path, registry, reference, capsys, damage
):
    paths = _paths(tmp_path, registry)
    clear_stop()
    with pytest.raises(RunInterrupted):
        _train(use_plugins(("stop", StopAt(step=56))), paths)
    clear_stop()
    if damage == "flip":
        data = bytearray(paths[1].read_bytes())
        data[len(data) // 2] ^= 0x01
        paths[1].write_bytes(bytes(data))
    else:
        paths[1].unlink()
    capsys.readouterr()
    resumed = _train(use_plugins(), paths)
    err = capsys.readouterr().err.strip().splitlines()
    for got, want in zip(resumed, reference, strict=True):
        assert _comparable(got) == _comparable(want)
        assert "resumed" not in got.get("checkpoint", {})
    warned = [line for line in err if "checkpoint discarded" in line]
    if damage == "flip":
        assert "checksum does not match" in warned[0] and str(paths[1]) in warned[0]
        assert "checksum" in resumed[1]["checkpoint"]["discarded"]
    # The others cannot resume without it: discarded too, each in one line.
    assert len(warned) == (3 if damage == "flip" else 2)
    assert all(line.startswith("dstbench: warning: ") for line in warned)
    assert "not all at epoch 1" in resumed[0]["checkpoint"]["discarded"]


def test_checkpoints_that_do_not_fit_the_runs_start_the_group_over(
    tmp_path, registry, reference, capsys
):
    from dstbench.plugins import get_plugins

    position = {"epoch": 1, "batches_done": 0, "step": 40}
    paths = _paths(tmp_path, registry)
    for spec, path in zip(SPECS, paths, strict=True):
        run_id = build_spec(spec, registry).run_id
        checkpoints.write(
            path, run_id, {**position, "model": {"nope": torch.zeros(1)}}, seed=spec["seed"]
        )
    records = _train(get_plugins(), paths)
    for got, want in zip(records, reference, strict=True):
        assert _comparable(got) == _comparable(want)
        assert got["checkpoint"]["discarded"].startswith("does not fit the run")
    assert capsys.readouterr().err.count("checkpoint discarded (does not fit the run") == 3
    assert not any(path.exists() for path in paths)


def test_a_single_engine_run_resumes_from_a_batched_checkpoint(use_plugins, tmp_path, registry):
    """Same file format: a run of the group, checkpointed by the batched engine, is resumed by
    the single engine and agrees with the single engine's uninterrupted run."""
    paths = _paths(tmp_path, registry)
    clear_stop()
    with pytest.raises(RunInterrupted):
        _train(use_plugins(("stop", StopAt(step=56))), paths)
    clear_stop()
    plugins = use_plugins()
    spec = build_spec(SPECS[2], registry)
    record = train_run(spec, plugins=plugins, device=torch.device("cpu"), checkpoint=paths[2])
    single = train_run(spec, plugins=plugins, device=torch.device("cpu")).to_json()
    assert record.to_json()["checkpoint"]["resumed"][0]["step"] == 56
    _assert_same_record(record.to_json(), single)


@pytest.mark.slow
def test_a_group_worker_stopped_by_sigterm_resumes_its_group(tmp_path, registry):
    """SIGTERM: the worker checkpoints every run of its group after the current iteration
    and exits 75 ("resume me"); the next attempt writes the uninterrupted records."""
    from dstbench.contracts import ExecutionOptions, Job
    from dstbench.engine.interrupt import INTERRUPTED_EXIT
    from dstbench.plugins import get_plugins
    from dstbench.suite.worker import checkpoint_path

    specs = [build_spec({**spec, "epochs": 6}, registry) for spec in SPECS]
    expected = [
        r.to_json() for r in train_group(specs, plugins=get_plugins(), device=torch.device("cpu"))
    ]
    (tmp_path / "runs").mkdir()
    jobs = [Job(s.run_id, s, str(tmp_path / "runs" / f"{s.run_id}.json"), s.label) for s in specs]
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=1, engine="batched")
    job_file = tmp_path / "jobs.json"
    payload = {"jobs": [job.to_dict() for job in jobs], "options": options.to_dict()}
    job_file.write_text(json.dumps(payload))
    command = [sys.executable, "-m", "dstbench.suite.worker", str(job_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    files = [checkpoint_path(job) for job in jobs]
    deadline = time.monotonic() + 300
    while not all(path.exists() for path in files):
        assert process.poll() is None, process.communicate()[1].decode()
        assert time.monotonic() < deadline, "no checkpoints appeared"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == INTERRUPTED_EXIT
    assert all(path.exists() for path in files)
    assert not list((tmp_path / "runs").glob("*.json"))
    again = subprocess.run(command, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode()
    for job, want in zip(jobs, expected, strict=True):
        record = json.loads(Path(job.record_path).read_text())
        assert record["checkpoint"]["resumed"]
        assert {**_comparable(want), "execution": record["execution"]} == _comparable(record)
    assert not any(path.exists() for path in files)


# --- a kill -9 of a real suite run --------------------------------------------------------

KILLED = """
name = "batched-kill"
model = "mlp[hidden=[16]]"
dataset = "digits"
epochs = 3
densities = [0.1]
criteria = ["magnitude", "snip"]
growth = "gradient"
seeds = [0, 1]
engine = "batched"
checkpoint_every = 1
"""


def _suite(tmp_path: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "dstbench", "suite", f"{name}.toml", "-j", "1", "--device", "cpu"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _records(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (root / "runs").glob("*.json")}


@pytest.mark.slow
def test_a_killed_batched_suite_resumes_its_group_from_the_checkpoints(tmp_path):
    """kill -9 of the whole process group once every run of the group has its epoch-1
    checkpoint; the re-run resumes them (not from scratch) and writes the records of an
    uninterrupted run."""
    (tmp_path / "batched-kill.toml").write_text(KILLED)
    (tmp_path / "whole.toml").write_text(KILLED.replace("batched-kill", "whole"))
    whole = _suite(tmp_path, "whole")
    out, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, out
    expected = _records(tmp_path / "results" / "whole")
    assert len(expected) == 4
    root = tmp_path / "results" / "batched-kill"
    files = [root / "checkpoints" / f"{run_id}.pt" for run_id in expected]
    process = _suite(tmp_path, "batched-kill")
    try:
        deadline = time.monotonic() + 300
        while not all(path.exists() for path in files):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert not _records(root)
    again = _suite(tmp_path, "batched-kill")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    got = _records(root)
    assert got.keys() == expected.keys()
    for run_id, record in got.items():
        assert record["checkpoint"]["resumed"][0]["epoch"] >= 1  # resumed, not started over
        want = {**_comparable(expected[run_id]), "execution": record["execution"]}
        assert {**_comparable(record), "execution": record["execution"]} == want
        assert record["timings"]["group_size"] == 4
    assert not list((root / "checkpoints").glob("*.pt"))
