"""Results that can be trusted under bad input, bad files and faults (one test per class)."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from handmade import new_record

from dstbench.cli import main
from dstbench.datasets.cifar import read_cifar_file
from dstbench.datasets.files import exclusive
from dstbench.engine.single import execute
from dstbench.engine.spec import normalize_spec
from dstbench.errors import DataError, SpecError
from dstbench.io import OutputError, check_output_file, write_bytes_atomic, write_json_atomic
from dstbench.plugins import MODULES_ENV, load_plugins
from dstbench.suite import RunStore, load_suite
from dstbench.suite.executors import ExecutionOptions, Job
from dstbench.suite.progress import ProgressDisplay
from dstbench.suite.runner import _Reporter
from dstbench.suite.worker import run_job

TESTS = Path(__file__).resolve().parent


def one_line_error(capsys, code, *needles):
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert lines and all(line.startswith("dstbench: error: ") for line in lines), captured.err
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in captured.err
    return lines


# --- files and security ------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # loading it would create the file


def test_a_crafted_cifar_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Payload(str(marker)), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load io\.open"):
        read_cifar_file(path, "labels", "cifar10")
    assert not marker.exists()
    proof = tmp_path / "proof"  # the payload is real: a plain unpickler creates the file
    pickle.loads(pickle.dumps(_Payload(str(proof)), protocol=2)).close()
    assert proof.exists()


def test_planted_lock_symlinks_are_refused_and_their_targets_intact(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    results = tmp_path / "results"
    results.mkdir()
    (results / ".lock").symlink_to(precious)
    with pytest.raises(OutputError, match="symbolic link"), RunStore(results).lock():
        pass
    data = tmp_path / "data"
    data.mkdir()
    (data / ".cifar-10-batches-py.lock").symlink_to(precious)
    with pytest.raises(OutputError, match="symbolic link"), exclusive(data, "cifar-10-batches-py"):
        pass
    assert precious.read_text() == "keep me"


def test_outputs_refuse_directories_fifos_devices_and_symlinks(tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere.json")
    for path, what in [
        (tmp_path / "dir", "a directory"),
        (tmp_path / "fifo", "a FIFO"),
        (Path(os.devnull), "a device node"),
        (tmp_path / "link", "a symbolic link"),
    ]:
        with pytest.raises(OutputError, match=what):
            check_output_file(path)
    with pytest.raises(OutputError):
        write_json_atomic(tmp_path / "link", {})
    assert not (tmp_path / "elsewhere.json").exists()
    started = time.monotonic()
    code = main(["run", "--model", "mlp", "--dataset", "digits", "--output", str(tmp_path / "dir")])
    one_line_error(capsys, code, "is a directory")
    assert time.monotonic() - started < 20  # refused before training


def test_writes_honour_the_umask_and_fsync_the_directory(tmp_path, monkeypatch):
    import dstbench.io as dio

    synced = []
    real = dio.fsync_dir
    monkeypatch.setattr(dio, "fsync_dir", lambda d: (synced.append(Path(d)), real(d)))
    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "plot.png", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "plot.png").stat().st_mode & 0o777 == 0o640
    assert synced == [tmp_path]


def test_a_record_never_carries_the_file_it_failed_to_parse(tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/bin/false\n")
    for spec_file in (str(secret), str(tmp_path / "gz.csv.gz")):
        if spec_file.endswith(".gz"):
            Path(spec_file).write_bytes(b"root:x:0:0 not gzip")
        record = execute(
            {"model": "mlp", "dataset": f"higgs[file={json.dumps(spec_file)}]", "epochs": 1}
        )
        assert record["status"] == "failed"
        text = json.dumps(record)
        assert "root:x" not in text and "/bin/bash" not in text, record["error"]["message"]


# --- inputs that got tracebacks ----------------------------------------------------------


def suite_file(tmp_path, body):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("x = " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        ('model = "mlp"\ndataset = "digits"\ncriteria = [{name = "mest", params = 5}]', "params"),
        (f'name = "{"a" * 300}"\nmodel = "mlp"\ndataset = "digits"', "at most 100 characters"),
        ('model = "mlp"\ndataset = "digits"\ndensities = [1e-300]', "densities"),
        ('model = "mlp"\ndataset = "digits"\nseeds = [18446744073709551616]', "seeds"),
        ('model = "mlp"\ndataset = "digits"\ntimeout = -1', "timeout"),
        ('model = "mlp"\ndataset = "digits"\ndownload = "yes"', "download"),
    ],
    ids=["deep", "params-not-a-table", "long-name", "density", "seed", "timeout", "download"],
)
def test_bad_suites_get_one_line_and_exit_2(tmp_path, capsys, body, needle):
    code = main(["suite", suite_file(tmp_path, body), "--dry-run"])
    one_line_error(capsys, code, needle)


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    existing = tmp_path / "existing_file"
    existing.write_text("x")
    path = suite_file(tmp_path, 'model = "mlp"\ndataset = "digits"\n')
    code = main(["suite", path, "-o", str(existing)])
    one_line_error(capsys, code, "not a directory")
    assert existing.read_text() == "x"


def test_leaderboard_over_records_without_the_needed_fields(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"status": "ok", "spec": {}, "run_id": "x"}))
    code = main(["leaderboard", str(tmp_path)])
    one_line_error(capsys, code, "not trusted")


def test_a_plugin_that_calls_sys_exit_on_import_is_reported_and_skipped(tmp_path, monkeypatch):
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_plugins(env={MODULES_ENV: "exiting_plugin"})
    record = loaded.records["exiting_plugin"]
    assert record.status == "failed" and "SystemExit" in record.error
    assert "magnitude" in loaded.registry.criteria  # the others still load


@pytest.mark.slow
def test_a_closed_pipe_is_not_a_traceback():
    result = subprocess.run(
        f"{sys.executable} -m dstbench plugins --components | head -1",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.startswith("plugin")
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_dry_run_of_a_million_runs_is_summarised_quickly(tmp_path, capsys):
    values = ", ".join(str(i) for i in range(100))
    densities = ", ".join(f"{0.001 * (i + 1):.3f}" for i in range(100))
    body = f"""
        model = "mlp"
        dataset = "digits"
        densities = [{densities}]
        seeds = [{values}]
        update_period = [{", ".join(str(i + 1) for i in range(100))}]
    """
    started = time.monotonic()
    assert main(["suite", suite_file(tmp_path, body), "--dry-run"]) == 0
    assert time.monotonic() - started < 30
    out = capsys.readouterr().out
    assert "up to 1,000,000 runs" in out and len(out.splitlines()) < 10


# --- fail fast and once ------------------------------------------------------------------


def test_missing_data_fails_the_suite_once_per_dataset_before_anything_is_written(tmp_path, capsys):
    body = """
        model = "mlp"
        densities = [0.1, 0.2]
        seeds = [0, 1]
        [[setups]]
        dataset = "cifar10"
        [[setups]]
        dataset = "cifar100"
    """
    out = tmp_path / "results"
    code = main(["suite", suite_file(tmp_path, body), "-o", str(out), "--data-root", str(tmp_path)])
    lines = one_line_error(capsys, code, "cifar10", "cifar100", str(tmp_path))
    assert len(lines) == 2 and all("--download" in line for line in lines)
    assert not out.exists()
    assert (
        main(["suite", suite_file(tmp_path, body), "--dry-run", "--data-root", str(tmp_path)]) == 0
    )
    shown = capsys.readouterr().out
    assert "data: mlp/cifar10: dataset 'cifar10': no data at" in shown


def test_the_suite_keys_data_root_and_download_are_real(tmp_path, registry):
    path = suite_file(
        tmp_path, 'model = "mlp"\ndataset = "digits"\ndata_root = "d"\ndownload = true'
    )
    suite = load_suite(path, registry)
    assert suite.data_root == str(tmp_path / "d") and suite.download is True


@pytest.mark.parametrize("command", ["run", "suite"])
def test_an_unusable_device_is_refused_before_training(tmp_path, capsys, command):
    args = ["--model", "mlp", "--dataset", "digits"]
    if command == "suite":
        args = [
            suite_file(tmp_path, 'model = "mlp"\ndataset = "digits"\n'),
            "-o",
            str(tmp_path / "r"),
        ]
    code = main([command, *args, "--device", "foo"])
    one_line_error(capsys, code, "--device foo")
    assert not (tmp_path / "r").exists()


def test_a_file_where_the_results_directory_should_be(tmp_path, capsys):
    (tmp_path / "results").write_text("")
    path = suite_file(tmp_path, 'model = "mlp"\ndataset = "digits"\nepochs = 1\n')
    code = main(["suite", path, "-o", str(tmp_path / "results" / "s")])
    one_line_error(capsys, code, "results")


def test_no_space_left_gives_one_line(tmp_path, monkeypatch):
    import dstbench.io as dio

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dio.os, "fsync", full)
    with pytest.raises(OutputError, match=r"x\.json: no space left on device"):
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []  # no temporary left


def test_a_full_tmpfs_gives_one_line(tmp_path, capsys):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        (mount / "filler").write_bytes(b"\0" * 60_000)
        with pytest.raises(OutputError, match="no space left on device"):
            write_bytes_atomic(mount / "record.json", b"x" * 20_000)
    finally:
        subprocess.run(["umount", str(mount)], check=False)


# --- records and workers -----------------------------------------------------------------


def real_spec(registry, **extra):
    return normalize_spec({"model": "mlp", "dataset": "digits", **extra}, registry)


def test_a_worker_dying_after_writing_diverged_keeps_the_record(tmp_path, registry):
    from dstbench.contracts.spec import spec_hash
    from dstbench.suite.loader import Cell

    spec = real_spec(registry)
    run_id = spec_hash(spec)
    store = RunStore(tmp_path)
    record = new_record(spec, run_id)
    record.update(status="diverged", reason="training loss became nan")
    store.write(record)
    display = ProgressDisplay(io.StringIO(), total=1, done=0, to_run=1, live=False)
    reporter = _Reporter(store, {run_id: Cell(run_id, spec, "mlp/digits")}, display)
    reporter.finished(run_id, "worker w0 died while running it (killed by SIGKILL)")
    assert store.load(run_id)["status"] == "diverged"


def test_a_worker_never_removes_the_shared_artifacts_folder(tmp_path, registry):
    spec = real_spec(registry, dataset='higgs[file="missing.csv"]')
    from dstbench.contracts.spec import spec_hash

    artifacts = tmp_path / "artifacts"
    options = ExecutionOptions(workers=2, artifact_root=str(artifacts))
    job = Job(spec_hash(spec), spec, str(tmp_path / "runs" / "r.json"), "r")
    assert run_job(job, options) == "failed"
    assert artifacts.is_dir() and not (artifacts / job.run_id).exists()


def test_labels_of_a_delta_t_sweep_differ(tmp_path, registry):
    path = suite_file(
        tmp_path, 'model = "mlp"\ndataset = "digits"\nupdate_period = [100, 200, 400]'
    )
    labels = [c.label for c in load_suite(path, registry).cells]
    assert len(set(labels)) == 3 and all("update_period=" in label for label in labels)


# --- impossible specs and broken runs ----------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [({"density": 1e-300}, "density"), ({"seed": 2**64}, "seed"), ({"epochs": 10**9}, "epochs")],
)
def test_impossible_specs_are_refused_before_anything_runs(registry, extra, key):
    with pytest.raises(SpecError, match=key):
        real_spec(registry, **extra)


@pytest.mark.parametrize("hidden", ["[0]", "[-5]", "[100000000]"])
def test_impossible_widths_are_one_line(capsys, hidden):
    code = main(["run", "--model", f"mlp[hidden={hidden}]", "--dataset", "digits", "--epochs", "1"])
    one_line_error(capsys, code, "hidden")


def test_a_layer_left_without_weights_is_invalid():
    record = execute({"model": "mlp", "dataset": "digits", "density": 1e-9, "epochs": 1})
    assert record["status"] == "invalid"
    assert "0 active weights" in record["reason"]


# --- runs whose numbers mean nothing are not ok -------------------------------------------


def test_a_distribution_that_empties_a_layer_makes_the_run_invalid():
    record = execute(
        {
            "model": "mlp[hidden=[16]]",
            "dataset": "digits",
            "epochs": 1,
            "density": 0.05,
            "distribution": "erk[power=-5]",
        }
    )
    assert record["status"] == "invalid"
    assert "has 0 active weights" in record["reason"] and "the network is cut" in record["reason"]
    assert record["metrics"]["test_accuracy"] is None and record["metrics"]["curve"] == []


def test_a_non_finite_validation_loss_makes_the_run_diverged(use_plugins):
    import torch

    from dstbench import hookimpl
    from dstbench.contracts import DatasetParts, TensorSplit

    def poisoned(ctx):
        """Finite training and test data; validation inputs that are NaN."""
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 8, generator=generator)
        y = (x[:, 0] > 0).long()
        val = TensorSplit(torch.full((16, 8), float("nan")), torch.zeros(16, dtype=torch.long))
        return DatasetParts(TensorSplit(x, y), TensorSplit(x, y), (8,), 2, val=val)

    class Plugin:
        @hookimpl
        def dstbench_register_datasets(self, register):
            register("poisoned", poisoned)

    plugins = use_plugins(("poisoned-data", Plugin()))
    record = execute(
        {"model": "mlp[hidden=[8]]", "dataset": "poisoned", "epochs": 2, "validation": "paper"},
        plugins=plugins,
    )
    assert record["status"] == "diverged"
    assert record["reason"] == "validation loss became nan in epoch 1"
    assert record["metrics"]["test_accuracy"] is None


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ("mlp[hidden=[0]]", "hidden must be an integer in [1,"),
        ("mlp[hidden=[64, -3]]", "got -3"),
        ("mlp[hidden=[100000000000]]", "got 100000000000"),
        ("mlp_higgs[hidden=0]", "'mlp_higgs': hidden"),
        ("resnet20[width=0]", "width must be"),
    ],
)
def test_impossible_model_sizes_are_refused_when_the_spec_is_validated(registry, model, needle):
    with pytest.raises(SpecError) as info:
        normalize_spec({"model": model, "dataset": "digits"}, registry)
    assert info.value.key == "model" and needle in info.value.detail


def test_a_suite_with_an_impossible_width_is_refused_before_anything_runs(tmp_path, capsys):
    suite = tmp_path / "w.toml"
    suite.write_text('model = "mlp[hidden=[0]]"\ndataset = "digits"\n')
    out = tmp_path / "out"
    assert main(["suite", str(suite), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{suite}: model: " in err and "hidden" in err
    assert not out.exists()
