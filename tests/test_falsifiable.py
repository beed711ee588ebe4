"""Results nothing can falsify: finished records stand, damage is detected, files are not
trusted, plugins cannot change what they are shown, and every run starts from one state."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from handmade import new_record

from dstbench import hookimpl
from dstbench.contracts.record import content_digest, seal
from dstbench.engine import checkpoint as checkpoints
from dstbench.engine.spec import build_spec
from dstbench.io import NotAFileError, read_json
from dstbench.leaderboard.data import load_many, load_results
from dstbench.suite import RunStore
from dstbench.suite.executors import ExecutionOptions, Job
from dstbench.suite.store import record_problem
from dstbench.suite.worker import checkpoint_path, run_job

SPEC = {"model": "mlp[hidden=[8]]", "dataset": "digits", "epochs": 1, "seed": 3}


def _job(tmp_path: Path, registry, replaces: str | None = None, **overrides) -> Job:
    spec = build_spec({**SPEC, **overrides}, registry)
    path = tmp_path / "runs" / f"{spec.run_id}.json"
    return Job(spec.run_id, spec, str(path), spec.label, replaces=replaces)


def _ok_record(registry, accuracy: float = 0.5, **overrides) -> dict:
    spec = build_spec({**SPEC, **overrides}, registry)
    record = new_record(spec.to_json(), spec.run_id)
    record["status"] = "ok"
    record["metrics"]["test_accuracy"] = accuracy
    record["metrics"]["best_val_test_accuracy"] = accuracy
    return record


# --- 1. a finished record is never overwritten ----------------------------------------------


class FailsAfterFirstRun:
    """A criterion that works for the first run that uses it and raises ever after."""

    def __init__(self) -> None:
        self.runs: set[int] = set()

    @hookimpl
    def dstbench_register_criteria(self, register):
        def flaky(ctx):
            """|w|, once."""
            self.runs.add(id(ctx.generator))
            if len(self.runs) > 1:
                raise RuntimeError("second run")
            return ctx.weight.abs()

        register("flaky", flaky)


def test_a_finished_record_is_neither_retrained_nor_replaced(use_plugins, tmp_path):
    plugins = use_plugins(("flaky", FailsAfterFirstRun()))
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=0)
    job = _job(tmp_path, plugins.registry, criterion="flaky", update_period=5)
    assert run_job(job, options) == "ok"
    written = Path(job.record_path).read_bytes()
    epochs = []
    # The same task again (dask recomputes the tasks of a dead worker): nothing is trained.
    assert run_job(job, options, progress=lambda e, n: epochs.append(e)) == "ok"
    assert epochs == []
    assert Path(job.record_path).read_bytes() == written
    # A job planned over that record (--retry, a failed run) does replace it.
    record = json.loads(written)
    again = Job(job.run_id, job.spec, job.record_path, job.label, replaces=content_digest(record))
    assert run_job(again, options) == "failed"
    assert json.loads(Path(job.record_path).read_text())["status"] == "failed"


def test_the_driver_plans_jobs_over_the_records_they_may_replace(tmp_path, registry):
    store = RunStore(tmp_path)
    record = _ok_record(registry)
    record["status"], record["metrics"]["test_accuracy"] = "failed", None
    store.write(record)
    assert store.digest(record["run_id"]) == content_digest(
        read_json(store.runs / f"{record['run_id']}.json")
    )
    assert store.digest("0" * 16) is None
    job = Job.from_dict(_job(tmp_path, registry, replaces=store.digest(record["run_id"])).to_dict())
    assert job.replaces == store.digest(record["run_id"])


# --- 2. checkpoints are verified ----------------------------------------------------------


def _checkpoint(tmp_path: Path, run_id: str = "0123456789abcdef") -> Path:
    path = tmp_path / f"{run_id}.pt"
    payload = {
        "epoch": 1,
        "batches_done": 3,
        "step": 40,
        "model": {"w": torch.randn(64, 32, generator=torch.Generator().manual_seed(0))},
        "curve": [0.5, 0.25],
    }
    checkpoints.write(path, run_id, payload, seed=7)
    return path


def test_twenty_single_bit_flips_in_a_checkpoint_are_all_detected(tmp_path):
    path = _checkpoint(tmp_path)
    data, problem = checkpoints.read(path, path.stem, seed=7, epochs=3)
    assert problem is None and data is not None and data["step"] == 40
    original = path.read_bytes()
    rng = random.Random(20)
    detected = 0
    for _ in range(20):
        damaged = bytearray(original)
        bit = rng.randrange(len(damaged) * 8)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        data, problem = checkpoints.read(path, path.stem, seed=7, epochs=3)
        detected += data is None and problem is not None
    assert detected == 20


@pytest.mark.parametrize(
    ("name", "seed", "epochs", "why"),
    [
        ("fedcba9876543210", 7, 3, "file name"),
        ("0123456789abcdef", 8, 3, "seed 7"),
        ("0123456789abcdef", 7, 1, "epoch 1 (batch 3) of a 1-epoch run"),
    ],
)
def test_a_checkpoint_of_another_run_seed_or_position_is_discarded(
    tmp_path, name, seed, epochs, why
):
    path = _checkpoint(tmp_path)
    if name != path.stem:
        path = path.rename(tmp_path / f"{name}.pt")
    data, problem = checkpoints.read(path, "0123456789abcdef", seed=seed, epochs=epochs)
    assert data is None and why in problem


def test_a_discarded_checkpoint_warns_in_one_line_and_the_run_starts_over(
    tmp_path, registry, capsys
):
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=1)
    job = _job(tmp_path, registry, epochs=2)
    path = checkpoint_path(job)
    checkpoints.write(path, job.run_id, {"epoch": 1, "batches_done": 0, "step": 9}, seed=99)
    assert run_job(job, options) == "ok"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"dstbench: warning: {path}: checkpoint discarded (it is of seed 99, not the run's 3); "
        "the run starts over"
    ]
    record = json.loads(Path(job.record_path).read_text())
    assert "seed 99" in record["checkpoint"]["discarded"]


# --- 9. a failed checkpoint write is not the run's end ------------------------------------


def test_a_checkpoint_that_cannot_be_written_warns_once_and_training_goes_on(
    tmp_path, registry, capsys
):
    options = ExecutionOptions(workers=1, device="cpu", checkpoint_every=1)
    job = _job(tmp_path, registry, epochs=3)
    folder = checkpoint_path(job).parent
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("a file where the checkpoints folder should be")  # every write fails
    assert run_job(job, options) == "ok"
    warnings = [line for line in capsys.readouterr().err.splitlines() if "checkpoint" in line]
    assert len(warnings) == 1 and "cannot write its checkpoint" in warnings[0]
    record = json.loads(Path(job.record_path).read_text())
    assert record["status"] == "ok" and record["checkpoint_write_failed"]


def test_a_killed_runs_temporaries_and_artifacts_are_removed_by_its_next_run(tmp_path, registry):
    job = _job(tmp_path, registry)
    artifacts = tmp_path / "artifacts"
    stale = artifacts / job.run_id / "observer-notes.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from a killed run")
    temporary = checkpoint_path(job).parent / f".{job.run_id}.pt.k1ll3d.tmp"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(b"half a checkpoint")
    options = ExecutionOptions(workers=1, device="cpu", artifact_root=str(artifacts))
    assert run_job(job, options) == "ok"
    assert not temporary.exists()
    assert not (artifacts / job.run_id).exists()


# --- 3. record values and edits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda r: r["metrics"].update(test_accuracy=5.0), "outside [0, 1]"),
        (lambda r: r["metrics"].update(test_accuracy=1e308), "outside [0, 1]"),
        (lambda r: r["metrics"].update(final_train_loss=1e999), "not finite"),
        (lambda r: r["metrics"].update(best_val_test_accuracy=True), "not a number"),
        (lambda r: r["density"].update(target=0.0), "density.target"),
        (lambda r: r.update(mask_movement="all of it"), "mask_movement"),
    ],
)
def test_out_of_range_values_are_never_published(tmp_path, registry, edit, why):
    record = seal(_ok_record(registry))
    edit(record)  # as if written so, or edited afterwards: the value is reported
    (tmp_path / "a.json").write_text(json.dumps(record))
    assert why in record_problem(json.loads((tmp_path / "a.json").read_text()))
    (tmp_path / "b.json").write_text(json.dumps(seal(_ok_record(registry, seed=4))))
    results = load_results(tmp_path)
    assert [e.record["spec"]["seed"] for e in results.entries] == [4]
    assert [(p.name, why in w) for p, w in results.untrusted] == [("a.json", True)]


@pytest.mark.parametrize(
    ("key", "value"), [("seed", None), ("density", [0.1]), ("density", -1), ("method", "bogus")]
)
def test_specs_with_impossible_values_are_untrusted(registry, key, value):
    record = _ok_record(registry)
    record["spec"][key] = value
    from dstbench.contracts.spec import spec_hash

    record["run_id"] = spec_hash(record["spec"])
    assert f"spec.{key}" in record_problem(seal(record))


def test_a_hand_edited_record_is_detected_and_an_old_one_without_digest_is_read(tmp_path, registry):
    store = RunStore(tmp_path)
    record = _ok_record(registry, accuracy=0.5)
    path = store.write(record)
    text = path.read_text()
    assert '"digest": "sha256:' in text
    assert store.load(record["run_id"])["metrics"]["test_accuracy"] == 0.5
    path.write_text(text.replace('"test_accuracy": 0.5', '"test_accuracy": 0.999'))
    assert store.load(record["run_id"]) is None
    assert "edited after it was written" in dict(store.untrusted())[path]
    old = {k: v for k, v in record.items() if k != "digest"}
    old["schema"] = 1  # written before records carried digests
    path.write_text(json.dumps(old))
    assert store.load(record["run_id"])["metrics"]["test_accuracy"] == 0.5
    old["schema"] = 2
    path.write_text(json.dumps(old))
    assert "without its digest" in dict(store.untrusted())[path]


# --- 4. cells and merges ------------------------------------------------------------------


def test_a_density_given_as_a_string_joins_no_cell(tmp_path, registry):
    record = _ok_record(registry)
    record["spec"]["density"] = "0.1"
    from dstbench.contracts.spec import spec_hash

    record["run_id"] = spec_hash(record["spec"])
    (tmp_path / "x.json").write_text(json.dumps(seal(record)))
    (tmp_path / "y.json").write_text(json.dumps(seal(_ok_record(registry, seed=4))))
    results = load_results(tmp_path)
    assert [e.spec["density"] for e in results.entries] == [0.1]
    assert "spec.density" in results.untrusted[0][1]


def test_conflicting_records_of_one_run_are_reported_in_any_order(tmp_path, registry):
    a, b = tmp_path / "a", tmp_path / "b"
    RunStore(a).write(_ok_record(registry, accuracy=0.7))
    RunStore(b).write(_ok_record(registry, accuracy=0.4))
    RunStore(b).write(_ok_record(registry, accuracy=0.6, seed=4))
    RunStore(a).write(_ok_record(registry, accuracy=0.6, seed=4))  # agreeing copies
    for order in ([a, b], [b, a]):
        results = load_many(order)
        got = {e.spec["seed"]: (e.status, e.metric("test_accuracy")) for e in results.entries}
        assert got == {3: ("missing", None), 4: ("ok", 0.6)}
        assert sorted(p.parent.parent.name for p, _ in results.untrusted) == ["a", "b"]
        assert all("conflicts with" in why for _, why in results.untrusted)


def test_duplicates_in_a_hand_gathered_folder_conflict(tmp_path, registry):
    (tmp_path / "1.json").write_text(json.dumps(seal(_ok_record(registry, accuracy=0.7))))
    (tmp_path / "2.json").write_text(json.dumps(seal(_ok_record(registry, accuracy=0.4))))
    (tmp_path / "3.json").write_text(json.dumps(seal(_ok_record(registry, seed=4))))
    results = load_results(tmp_path)
    assert [e.spec["seed"] for e in results.entries] == [4]
    assert sorted(p.name for p, _ in results.untrusted) == ["1.json", "2.json"]


# --- 7. the file system is not trusted ----------------------------------------------------


def test_readers_refuse_devices_fifos_and_huge_files(tmp_path, registry):
    (tmp_path / "ok.json").write_text(json.dumps(seal(_ok_record(registry))))
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "huge.json").write_bytes(b" " * 100)
    with pytest.raises(NotAFileError, match="not a regular file"):
        read_json(tmp_path / "fifo.json")
    with pytest.raises(NotAFileError, match="larger than 10 bytes"):
        read_json(tmp_path / "huge.json", limit=10)
    # every reader (leaderboard, export, compare, analyze) goes through load_results
    code = (
        "from dstbench.leaderboard.data import load_results;"
        f"r = load_results({str(tmp_path)!r});"
        "print(len(r.entries), sorted(p.name for p, _ in r.untrusted))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1 []"  # names are free there: other files are skipped
    store = RunStore(tmp_path / "store")
    store.runs.mkdir(parents=True)
    os.mkfifo(store.runs / "0123456789abcdef.json")
    (store.runs / "fedcba9876543210.json").symlink_to("/dev/zero")
    assert store.load("0123456789abcdef") is None
    assert sorted(why for _, why in store.untrusted()) == [
        "a symbolic link, not a record file",
        "not a regular file, not a record file",
    ]


def test_a_planted_record_link_is_never_written_through(tmp_path, registry):
    from dstbench.suite import load_suite
    from dstbench.suite.runner import run_suite

    suite_file = tmp_path / "s.toml"
    suite_file.write_text(
        'name = "s"\nmodel = "mlp[hidden=[8]]"\ndataset = "digits"\nepochs = 1\n'
        'densities = [0.1]\ncriteria = ["magnitude"]\ngrowth = "gradient"\nseeds = [3]\n'
    )
    suite = load_suite(suite_file, registry)
    outside = tmp_path / "outside.json"
    outside.write_text("precious")
    store = RunStore(tmp_path / "results")
    store.runs.mkdir(parents=True)
    store.record_path(suite.cells[0].run_id).symlink_to(outside)
    outcome = run_suite(
        suite, output=tmp_path / "results", device="cpu", workers=1, stream=io.StringIO()
    )
    assert outside.read_text() == "precious"
    assert outcome.statuses == {suite.cells[0].run_id: "ok"}
    assert not store.record_path(suite.cells[0].run_id).is_symlink()


# --- 5. plugins that modify their inputs ----------------------------------------------------


class Meddler:
    """Criteria that change what they are shown, in place."""

    @hookimpl
    def dstbench_register_criteria(self, register):
        def shrinks_weights(ctx):
            """Halves the weights it scores."""
            ctx.weight.mul_(0.5)
            return ctx.weight.abs()

        def flips_mask(ctx):
            """Writes into the mask through numpy (no version bump)."""
            ctx.mask.numpy()[(0,) * ctx.mask.dim()] ^= True
            return ctx.weight.abs()

        def touches_grad(ctx):
            """Zeroes the gradient and writes it back."""
            saved = ctx.grad.clone()
            ctx.grad.zero_()
            ctx.grad.copy_(saved)
            return ctx.weight.abs() * ctx.grad.abs()

        register("shrinks_weights", shrinks_weights)
        register("flips_mask", flips_mask)
        register("touches_grad", touches_grad, needs_grad=True)


@pytest.mark.parametrize(
    ("criterion", "what"),
    [
        ("shrinks_weights", "ctx.weight"),
        ("flips_mask", "ctx.mask"),
        ("touches_grad", "ctx.grad"),
    ],
)
def test_a_criterion_that_modifies_its_inputs_fails_its_run(use_plugins, tmp_path, criterion, what):
    plugins = use_plugins(("meddler", Meddler()))
    job = _job(tmp_path, plugins.registry, criterion=criterion, update_period=5)
    assert run_job(job, ExecutionOptions(workers=1, device="cpu")) == "failed"
    error = json.loads(Path(job.record_path).read_text())["error"]
    assert error["type"] == "CriterionError"
    assert f"modified {what} in place" in error["message"]


# --- 6. every run starts from the same process state ---------------------------------------


class Polluter:
    """A criterion that leaves process-wide settings changed."""

    @hookimpl
    def dstbench_register_criteria(self, register):
        def polluting(ctx):
            """|w|, and float64 from now on."""
            torch.set_default_dtype(torch.float64)
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(2)
            random.seed(12345)
            return ctx.weight.abs()

        register("polluting", polluting)


def test_runs_in_one_worker_start_from_the_same_process_state(use_plugins, tmp_path):
    plugins = use_plugins(("polluter", Polluter()))
    options = ExecutionOptions(workers=1, device="cpu")
    threads = torch.get_num_threads()
    try:
        first = _job(tmp_path, plugins.registry, seed=4)
        assert run_job(first, options) == "ok"
        assert (
            run_job(
                _job(tmp_path, plugins.registry, criterion="polluting", update_period=5), options
            )
            == "ok"
        )
        assert torch.get_default_dtype() == torch.float64  # what the plugin left
        again = _job(tmp_path / "again", plugins.registry, seed=4)
        assert run_job(again, options) == "ok"
    finally:
        torch.set_default_dtype(torch.float32)
        torch.use_deterministic_algorithms(False)
        torch.set_num_threads(threads)
    a = json.loads(Path(first.record_path).read_text())
    b = json.loads(Path(again.record_path).read_text())
    assert a["metrics"]["test_accuracy"] == b["metrics"]["test_accuracy"]
    assert a["metrics"]["final_train_loss"] == b["metrics"]["final_train_loss"]
    assert "default dtype torch.float64" in b["execution"]["process_state_reset"]
    assert "deterministic algorithms on" in b["execution"]["process_state_reset"]


# --- 10. processes that plugins start end with their runs ----------------------------------


def _sleepers() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", b"173"]:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
def test_processes_a_plugin_starts_do_not_outlive_the_suite(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "spawning"\nmodel = "mlp[hidden=[8]]"\ndataset = "digits"\nepochs = 1\n'
        'update_period = 20\ndensities = [0.1]\ncriteria = ["spawns"]\ngrowth = "gradient"\n'
        "seeds = [0, 1]\n"
    )
    plugins = str(Path(__file__).resolve().parent / "plugins")
    env = {**os.environ, "PYTHONPATH": plugins, "DSTBENCH_PLUGIN_MODULES": "spawning_plugin"}
    command = [sys.executable, "-m", "dstbench", "suite", str(suite), "-o", str(tmp_path / "o")]
    command += ["-j", "1", "--device", "cpu", "--progress", "plain", "--no-leaderboard"]
    before = set(_sleepers())
    # Like `dstbench suite ... | cat`: the output pipe closes only when every holder exits.
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 done" in done.stdout
    assert set(_sleepers()) - before == set()


# --- 8. a group of runs past its time limit -------------------------------------------------


@pytest.mark.slow
def test_a_hung_run_fails_alone_and_its_batched_siblings_finish(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(
        'name = "hung"\nmodel = "mlp[hidden=[8]]"\ndataset = "digits"\nepochs = 1\n'
        'update_period = 10\ndensities = [0.1]\ncriteria = ["magnitude", "hangs"]\n'
        'growth = "gradient"\nseeds = [0, 1]\nengine = "batched"\ngroup = 4\ntimeout = 12\n'
    )
    plugins = str(Path(__file__).resolve().parent / "plugins")
    env = {
        **os.environ,
        "PYTHONPATH": plugins,
        "DSTBENCH_PLUGIN_MODULES": "hanging_criterion_plugin",
    }
    command = [sys.executable, "-m", "dstbench", "suite", str(suite), "-o", str(tmp_path / "o")]
    command += ["-j", "1", "--device", "cpu", "--progress", "plain", "--no-leaderboard"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert "each runs again alone" in done.stdout, done.stdout + done.stderr
    statuses = {}
    for path in (tmp_path / "o" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        statuses.setdefault((record["spec"]["criterion"]["name"], record["status"]), 0)
        statuses[(record["spec"]["criterion"]["name"], record["status"])] += 1
        if record["status"] == "failed":
            assert "timed out after" in record["error"]["message"]
    assert statuses == {("magnitude", "ok"): 2, ("hangs", "failed"): 2}


def test_a_failed_copy_gives_way_in_a_hand_gathered_folder(tmp_path, registry):
    failed = _ok_record(registry)
    failed["status"], failed["metrics"]["test_accuracy"] = "failed", None
    (tmp_path / "1.json").write_text(json.dumps(seal(failed)))
    (tmp_path / "2.json").write_text(json.dumps(seal(_ok_record(registry, accuracy=0.7))))
    results = load_results(tmp_path)
    assert [(e.status, e.metric("test_accuracy")) for e in results.entries] == [("ok", 0.7)]
    assert results.untrusted == ()


def test_a_fifo_or_a_device_as_a_checkpoint_is_discarded_without_blocking(tmp_path):
    fifo = tmp_path / "0123456789abcdef.pt"
    os.mkfifo(fifo)
    assert checkpoints.read(fifo, fifo.stem) == (None, "not a regular file")
    zero = tmp_path / "fedcba9876543210.pt"
    zero.symlink_to("/dev/zero")
    assert checkpoints.read(zero, zero.stem) == (None, "not a regular file")


def test_a_planted_artifact_link_is_removed_not_written_through(tmp_path, registry):
    job = _job(tmp_path, registry)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / job.run_id).symlink_to(elsewhere)
    options = ExecutionOptions(workers=1, device="cpu", artifact_root=str(artifacts))
    assert run_job(job, options) == "ok"
    assert (elsewhere / "keep.txt").read_text() == "keep"
    assert not (artifacts / job.run_id).is_symlink()


@pytest.mark.parametrize("command", ["export", "analyze", "compare"])
def test_every_reader_reports_the_records_it_leaves_out(tmp_path, registry, capsys, command):
    from dstbench.cli import main

    store = RunStore(tmp_path / "r")
    store.write(_ok_record(registry, accuracy=0.5))
    path = store.write(_ok_record(registry, accuracy=0.6, seed=4))
    path.write_text(path.read_text().replace('"test_accuracy": 0.6', '"test_accuracy": 0.999'))
    args = {
        "export": ["export", str(store.root), "-o", str(tmp_path / "x.csv")],
        "analyze": ["analyze", "winners", str(store.root), "-o", str(tmp_path / "w.md")],
        "compare": ["compare", str(store.root), str(store.root)],
    }[command]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"{path}: untrusted record (its content does not match its digest" in err


def test_every_engine_run_starts_from_the_same_process_state(registry):
    """train_run (the single engine, and the batched engine's per-run fallback) resets the
    process state itself, so runs that one worker trains one after another agree."""
    from dstbench.engine.single import train_run
    from dstbench.plugins import get_plugins

    spec = build_spec({**SPEC, "update_period": 5}, registry)
    clean = train_run(spec, plugins=get_plugins(), device=torch.device("cpu")).to_json()
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    try:
        again = train_run(spec, plugins=get_plugins(), device=torch.device("cpu")).to_json()
    finally:
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
    assert again["status"] == "ok"
    assert again["metrics"]["test_accuracy"] == clean["metrics"]["test_accuracy"]
    assert again["metrics"]["final_train_loss"] == clean["metrics"]["final_train_loss"]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
def test_a_dask_run_process_kills_what_its_plugins_started():
    """A dask run server stays in its worker's group; it kills its runs' descendants itself."""
    before = set(_sleepers())
    code = (
        "import subprocess; subprocess.Popen(['sleep', '173']);"
        "from dstbench.suite.reaping import reap_descendants; print(reap_descendants())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1"
    assert set(_sleepers()) - before == set()
