"""Running suites for real: worker processes, failure isolation, resume, kills and Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dstbench.cli import main
from dstbench.leaderboard import write_leaderboard
from dstbench.plugins import load_plugins
from dstbench.suite import RunStore, load_suite, run_suite
from dstbench.suite.executors import available_cpus
from dstbench.suite.runner import summary_lines

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from dstbench_suite_testplugin import MODULE  # noqa: E402 - needs the path above

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


@pytest.fixture
def testplugin(monkeypatch):
    """The test plugin, in this process and in every worker process."""
    monkeypatch.setenv("DSTBENCH_PLUGIN_MODULES", MODULE)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    return load_plugins().registry


def write_suite(path, body):
    path.write_text(textwrap.dedent(body))
    return path


def records(root):
    store = RunStore(root)
    return {p.stem: r for p, r in store.records()}


def run(suite_file, registry, output, **kwargs):
    stream = io.StringIO()
    suite = load_suite(suite_file, registry)
    outcome = run_suite(
        suite,
        output=output,
        device="cpu",
        stream=stream,
        live=False,
        registry=registry,
        **{"workers": 2, "publish": write_leaderboard, **kwargs},
    )
    return outcome, stream.getvalue()


FAILING = """
    name = "failing"
    dataset = "digits"
    epochs = 2
    update_period = 10
    densities = [0.1]
    growth = "gradient"

    [[setups]]
    model = "mlp"
    criteria = ["magnitude", "explode"]
    seeds = [0, 1]

    [[setups]]
    model = "nan_mlp"
    criteria = ["magnitude"]
    seeds = [0]
    update_period = 1000  # no topology update before the first epoch ends with a NaN loss
"""


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_others_finish_then_resume(testplugin, tmp_path):
    suite_file = write_suite(tmp_path / "failing.toml", FAILING)
    out = tmp_path / "results"
    outcome, text = run(suite_file, testplugin, out)
    assert outcome.exit_code == 1
    assert outcome.ran == 5
    got = records(out)
    by_criterion = {}
    for record in got.values():
        key = (record["spec"]["model"]["name"], record["spec"]["criterion"]["name"])
        by_criterion.setdefault(key, []).append(record)
    assert [r["status"] for r in by_criterion[("mlp", "magnitude")]] == ["ok", "ok"]
    for record in by_criterion[("mlp", "explode")]:
        assert record["status"] == "failed"
        assert record["error"]["type"] == "RuntimeError"
        assert "explode criterion: boom" in record["error"]["traceback"]
        assert record["metrics"]["test_accuracy"] is None
    (nan,) = by_criterion[("nan_mlp", "magnitude")]
    assert nan["status"] == "diverged"
    assert "training loss became nan" in nan["reason"]
    # every worker-run record says how it was executed (concurrency goes with timings)
    for record in got.values():
        assert record["execution"]["executor"] == "local"
        assert record["execution"]["workers"] == 2
        assert record["execution"]["torch_threads"] == max(1, available_cpus() // 2)
    assert outcome.counts() == {"ok": 2, "failed": 2, "diverged": 1}
    assert "RuntimeError: explode criterion: boom" in text  # the progress line
    summary = summary_lines(outcome)
    assert summary[0].startswith("suite failing: 5 runs: 2 done, 2 failed, 1 diverged | ran 5")
    assert sum("explode criterion: boom" in line for line in summary) == 2
    board = (out / "leaderboard.md").read_text()
    assert "Not averaged in: 2 failed." in board
    assert "Not averaged in: 1 diverged." in board

    # Re-running the same suite retries the failed runs only; finished ones are untouched.
    kept = {
        k: (out / "runs" / f"{k}.json").read_bytes()
        for k, r in got.items()
        if r["status"] != "failed"
    }
    outcome, text = run(suite_file, testplugin, out)
    assert outcome.ran == 2
    assert "5 runs, 3 already finished, 2 to run" in text
    for run_id, data in kept.items():
        assert (out / "runs" / f"{run_id}.json").read_bytes() == data


@pytest.mark.slow
def test_a_worker_that_dies_fails_its_run_only(testplugin, tmp_path):
    suite_file = write_suite(
        tmp_path / "dying.toml",
        """
        model = "mlp"
        dataset = "digits"
        epochs = 2
        update_period = 10
        densities = [0.1]
        growth = "gradient"
        criteria = ["sigkill_self", "magnitude"]
        seeds = [0, 1, 2]
        """,
    )
    out = tmp_path / "results"
    outcome, _text = run(suite_file, testplugin, out)
    assert outcome.counts() == {"ok": 3, "failed": 3}
    assert outcome.exit_code == 1
    for record in records(out).values():
        if record["spec"]["criterion"]["name"] == "sigkill_self":
            assert record["status"] == "failed"
            assert "died while running it (killed by SIGKILL)" in record["error"]["message"]
        else:
            assert record["status"] == "ok"


def test_a_second_driver_on_the_same_results_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text('model = "mlp"\ndataset = "digits"\n')
    with RunStore(tmp_path / "results" / "s").lock():
        assert main(["suite", "s.toml"]) == 2
    assert "another dstbench suite is running on these results" in capsys.readouterr().err


# --- kills, for real, through the command line -------------------------------------------

KILLABLE = """
    name = "killable"
    model = "mlp"
    dataset = "digits"
    epochs = 8
    densities = [0.05, 0.1]
    criteria = ["magnitude", "snip"]
    growth = "gradient"
    seeds = [0, 1]
    baselines = ["dense"]
"""  # 10 runs of about half a second each


def start(tmp_path, *extra, session=False):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dstbench",
            "suite",
            "killable.toml",
            "-j",
            "2",
            "--device",
            "cpu",
            *extra,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=session,
    )


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def children(pid):
    """Worker processes (spawned interpreters) whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def finished_records(root):
    runs = root / "runs"
    if not runs.is_dir():
        return {}
    out = {}
    for path in runs.glob("*.json"):
        out[path.name] = path.read_bytes()
    return out


def check_all_whole(root):
    """Every record on disk is complete JSON with a final status."""
    for name, data in finished_records(root).items():
        record = json.loads(data)
        assert record["status"] in ("ok", "failed", "diverged", "invalid"), name


def finish_and_check(tmp_path, expect_before):
    result = subprocess.run(
        [sys.executable, "-m", "dstbench", "suite", "killable.toml", "-j", "2", "--device", "cpu"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "results" / "killable"
    after = finished_records(root)
    assert len(after) == 10
    assert all(json.loads(d)["status"] == "ok" for d in after.values())
    for name, data in expect_before.items():
        if json.loads(data)["status"] == "ok":
            assert after[name] == data, "a finished run was run again"
    assert not list((root / "runs").glob(".*.tmp"))
    return result.stdout


@pytest.mark.slow
@linux_only
def test_sigkill_of_the_driver_loses_nothing_and_rerun_finishes(tmp_path):
    write_suite(tmp_path / "killable.toml", KILLABLE)
    root = tmp_path / "results" / "killable"
    proc = start(tmp_path)
    try:
        wait_for(lambda: len(finished_records(root)) >= 2)
        workers = wait_for(lambda: children(proc.pid))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    # the workers notice that the driver is gone and exit by themselves
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30)
    check_all_whole(root)
    before = finished_records(root)
    assert 2 <= len(before) < 10
    output = finish_and_check(tmp_path, before)
    assert (
        f"{len([d for d in before.values() if json.loads(d)['status'] == 'ok'])} already" in output
    )


@pytest.mark.slow
@linux_only
def test_ctrl_c_stops_workers_cleanly_and_rerun_finishes(tmp_path):
    write_suite(tmp_path / "killable.toml", KILLABLE)
    root = tmp_path / "results" / "killable"
    proc = start(tmp_path, "--progress", "plain", session=True)
    try:
        wait_for(lambda: len(finished_records(root)) >= 1)
        workers = wait_for(lambda: children(proc.pid))
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
        output, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    assert "interrupted: finished runs are saved" in output
    assert "Traceback" not in output
    assert not any(alive(pid) for pid in workers)
    assert not list((root / "runs").glob(".*.tmp"))
    check_all_whole(root)
    before = finished_records(root)
    finish_and_check(tmp_path, before)


@pytest.mark.slow
@linux_only
def test_sigkill_of_a_worker_fails_its_run_only_and_rerun_finishes(tmp_path):
    write_suite(tmp_path / "killable.toml", KILLABLE)
    root = tmp_path / "results" / "killable"
    proc = start(tmp_path, "--progress", "plain")
    try:
        wait_for(lambda: len(finished_records(root)) >= 1)
        victim = wait_for(lambda: children(proc.pid))[0]
        os.kill(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    failed = [
        json.loads(d)
        for d in finished_records(root).values()
        if json.loads(d)["status"] == "failed"
    ]
    # The worker was almost surely training (runs take ~1 s, handing over takes ~1 ms); if it
    # was between runs nothing failed and a fresh worker took over.
    assert proc.returncode == (1 if failed else 0), output
    assert len(failed) <= 1
    for record in failed:
        assert "killed by SIGKILL" in record["error"]["message"]
    assert len(finished_records(root)) == 10  # the suite went on to the end
    finish_and_check(tmp_path, finished_records(root))


@pytest.mark.slow
def test_a_hanging_run_is_stopped_at_the_time_limit_and_the_suite_goes_on(tmp_path, testplugin):
    suite_file = write_suite(
        tmp_path / "hang.toml",
        """
        name = "hang"
        model = "mlp"
        dataset = "digits"
        epochs = 1
        update_period = 5
        densities = [0.1]
        criteria = ["hang", "magnitude"]
        timeout = 20
        """,
    )
    outcome, text = run(suite_file, testplugin, tmp_path / "out", workers=2)
    statuses = sorted(outcome.statuses.values())
    assert statuses == ["failed", "ok"], text
    failed = next(r for r in records(tmp_path / "out").values() if r["status"] == "failed")
    assert failed["error"]["message"].startswith("timed out after ")
    assert failed["spec"]["criterion"]["name"] == "hang"
