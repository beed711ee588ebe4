"""What dstbench says when SLURM misbehaves, against the real one-node cluster of
``.ci/slurm-up.sh``: a controller that cannot be reached is not a job that ended, jobs that can
never start stop the suite with one line, tasks cancelled while pending say CANCELLED.

A scheduler "outage" is made for dstbench alone: its commands read a copy of ``slurm.conf``
whose controller and accounting ports are rewritten to ports nobody listens on, so ``squeue``,
``sacct`` and ``sbatch`` really fail to reach SLURM while the cluster goes on running the jobs.
Locally these tests skip without a cluster; in CI they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engines import require_slurm

from dstbench.errors import SuiteError
from dstbench.io import read_json
from dstbench.suite import scheduler
from dstbench.suite.ledger import Ledger
from dstbench.suite.slurm import _Tracker

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SUITE = """
name = "faults"
model = "mlp"
dataset = "digits"
epochs = {epochs}
checkpoint_every = 1
densities = [0.1]
criteria = ["magnitude"]
growth = ["random"]
seeds = [0]
"""


@pytest.fixture(autouse=True)
def _cluster():
    require_slurm()


def _conf_copy(folder: Path) -> Path:
    """A copy of the cluster's ``slurm.conf`` (and what it reads next to it)."""
    source = Path(os.environ["SLURM_CONF"])
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("slurm.conf", "cgroup.conf"):
        if (source.parent / name).exists():
            shutil.copy(source.parent / name, folder / name)
    return folder / "slurm.conf"


def _cut_off(conf: Path, cut: bool) -> None:
    """Point ``conf`` at ports nobody listens on (``cut``), or back at the cluster."""
    good = Path(os.environ["SLURM_CONF"]).read_text()
    if cut:
        good = re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1", good)
        good = re.sub(r"(?m)^AccountingStoragePort=.*$", "AccountingStoragePort=1", good)
        # SLURM's commands retry an absent controller for MessageTimeout (30 s here): a
        # shorter one keeps the test short.
        good = re.sub(r"(?m)^MessageTimeout=.*$", "MessageTimeout=2", good)
    conf.write_text(good)


def _env(conf: Path) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": str(conf)}


def _dstbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _statuses(root: Path) -> dict[str, str]:
    return {p.stem: read_json(p)["status"] for p in (root / "runs").glob("*.json")}


def _running(out: Path) -> bool:
    entries = Ledger(out).load() if (out / "jobs.json").exists() else {}
    states = scheduler.job_states(sorted({e.job_id for e in entries.values()}))
    return any(s.phase == "running" for s in states.values()) and (out / "checkpoints").is_dir()


def test_a_scheduler_that_does_not_answer_is_waited_for_not_taken_as_ended(tmp_path):
    # A run that outlasts the silence: a task whose records all exist is done without
    # SLURM's word, and the driver would end before SLURM answers again.
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=400))
    suite, out = str(tmp_path / "s.toml"), tmp_path / "out"
    conf = _conf_copy(tmp_path / "conf")
    _cut_off(conf, cut=False)
    args = ["suite", suite, "-o", str(out), "--executor", "slurm[poll=1,patience=120]"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "dstbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(conf),
    )
    try:
        _wait_for(lambda: _running(out), 120, "the task to run")
        _cut_off(conf, cut=True)  # from here on, dstbench cannot reach SLURM
        status = _dstbench("status", suite, "-o", str(out), env=_env(conf))
        time.sleep(4)  # several looks at poll = 1: today's code took two as "ended"
        assert not list((out / "runs").glob("*.json")), "the run ended within the silence"
        _cut_off(conf, cut=False)
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert status.returncode == 0, status.stdout + status.stderr
    header, _, row = (re.split(r"\s{2,}", line.strip()) for line in status.stdout.splitlines()[:3])
    counts = dict(zip(header, row, strict=True))
    assert (counts["failed"], counts["unknown"], counts["running"]) == ("0", "1", "0"), (
        status.stdout
    )
    assert "in an unknown state (not failed)" in status.stdout
    assert driver.returncode == 0, output
    assert "slurm: SLURM does not answer (squeue: " in output
    assert "slurm: SLURM answers again after " in output
    assert list(_statuses(out).values()) == ["ok"]
    assert "failed" not in (out / "leaderboard.md").read_text().lower().split("| executor")[0]


def test_patience_with_a_silent_scheduler_stops_following_without_failing_runs(
    tmp_path, monkeypatch
):
    """The driver's follower with no patience: one line, no run reported as ended."""
    conf = _conf_copy(tmp_path / "conf")
    _cut_off(conf, cut=True)
    monkeypatch.setenv("SLURM_CONF", str(conf))
    events: list[tuple[str, str]] = []

    class Reporter:
        def started(self, run_id: str, where: str) -> None:
            events.append(("started", run_id))

        def finished(self, run_id: str, error: str | None = None, log: str | None = None):
            events.append(("finished", run_id))

        def note(self, line: str) -> None:
            events.append(("note", line))

    tracker = _Tracker(tmp_path, Reporter(), patience=1.0)
    tracker.adopt("123_0", ["run-a"])
    with pytest.raises(SuiteError) as caught:
        for _ in range(4):
            tracker.look()
            time.sleep(0.6)
    message = str(caught.value)
    assert message.startswith("executor slurm: SLURM has not answered for ")
    assert "no run was recorded as failed" in message and "\n" not in message
    assert [kind for kind, _ in events] == ["note"]
    assert "waiting up to 1 s (slurm[patience=SECONDS])" in events[0][1]


def test_a_task_that_can_never_start_stops_the_suite_with_one_line(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=1))
    out = tmp_path / "out"
    done = _dstbench(
        "suite", str(tmp_path / "s.toml"), "-o", str(out),
        "--executor", "slurm[poll=1,cpus_per_task=64]",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert re.fullmatch(
        r"dstbench: error: executor slurm: job \d+(_0)? can never start: SLURM keeps it pending "
        r"\(PartitionConfig: .*\); cancelled 1 task, no run was recorded",
        lines[-1],
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert " 1 to run on slurm -> " in done.stdout  # not "with 1 worker": -j means nothing
    job_id = Ledger(out).load().popitem()[1].job_id
    _wait_for(
        lambda: scheduler.job_states([job_id])[job_id].phase == "ended", 30, "the cancellation"
    )
    assert _statuses(out) == {}


def test_tasks_cancelled_while_pending_say_cancelled(tmp_path):
    """One task runs, the other waits for it (array_parallelism = 1, one run per task); the
    array is cancelled.
    ``sacct`` then reports the task that never started as a range, ``<array>_[1%1]``."""
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=100).replace("[0]", "[0, 1]"))
    suite, out = str(tmp_path / "s.toml"), tmp_path / "out"
    queued = _dstbench(
        "suite", suite, "-o", str(out), "--detach",
        "--executor", "slurm[poll=1,array_parallelism=1,pack=1]",
    )  # fmt: skip
    assert queued.returncode == 0, queued.stdout + queued.stderr
    jobs = sorted({e.job_id for e in Ledger(out).load().values()})
    assert len(jobs) == 2
    _wait_for(lambda: _running(out), 120, "the first task to run")
    subprocess.run(["scancel", jobs[0].split("_")[0]], check=True)
    states: dict = {}

    def cancelled() -> bool:
        # accounting itself, as dstbench reads it once squeue has forgotten the jobs
        states.update(scheduler.sacct_states(jobs) or {})
        return len(states) == 2 and all(s.phase == "ended" for s in states.values())

    _wait_for(cancelled, 60, "the cancellation in accounting")
    assert sorted(states) == jobs
    assert {s.state.split()[0] for s in states.values()} == {"CANCELLED"}, states
    status = _dstbench("status", suite, "-o", str(out))
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("CANCELLED") == 2 and "UNKNOWN" not in status.stdout


def test_a_refused_array_is_one_line_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=1))
    out = tmp_path / "out"
    refused = _dstbench(
        "suite", str(tmp_path / "s.toml"), "-o", str(out),
        "--executor", "slurm[partition=nosuchpartition]",
    )  # fmt: skip
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    # sbatch's words once, in dstbench's line, not printed before it as well
    assert [i for i, line in enumerate(lines) if "sbatch: error" in line] == [len(lines) - 1]
    assert lines[-1].startswith("dstbench: error: executor slurm: sbatch refused the job array: ")
    assert "invalid partition" in lines[-1].lower()
    assert not out.exists()


def test_a_task_past_its_time_limit_says_timeout_attempts_and_checkpoint(tmp_path):
    """One attempt (requeues = 0) of a one-minute task: SLURM's early warning does not stop
    it, the limit does; the record says TIMEOUT, the attempts and the checkpoint's epoch."""
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=5000))
    out = tmp_path / "out"
    done = _dstbench(
        "suite", str(tmp_path / "s.toml"), "-o", str(out),
        "--executor", "slurm[poll=1,time=1,requeues=0]",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (record,) = (read_json(p) for p in (out / "runs").glob("*.json"))
    message = record["error"]["message"]
    assert re.fullmatch(
        r"SLURM job \d+ ended TIMEOUT: the time limit of 1 min was reached on each of 1 "
        r"attempt; its checkpoint reached epoch \d+ of 5000, where a re-run resumes \(raise "
        r"the executor's time or requeues\)",
        message,
    ), message
    assert "no requeue is left: training on until it" in record["error"]["log_tail"]
    assert "BeginTime" not in message and "FAILED" not in message


#: ``dstbench ARGS`` killed by SIGKILL right after sbatch, before the ledger records the
#: jobs (``where = "ledger"``) or before submitit puts the tasks' pickles in place
#: (``where = "pickles"``).
KILLED_IN_THE_SUBMIT_WINDOW = """
import os, signal, sys
import submitit.core.utils
from dstbench.cli import main
from dstbench.suite.ledger import Ledger

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if sys.argv[1] == "ledger":
    Ledger.add = die
else:
    submitit.core.utils.JobPaths.move_temporary_file = die
main(sys.argv[2:])
"""


@pytest.mark.parametrize("where", ["ledger", "pickles"])
def test_a_driver_killed_between_sbatch_and_the_ledger_leaves_no_orphan(tmp_path, where):
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=20).replace("[0]", "[0, 1]"))
    suite, out = str(tmp_path / "s.toml"), tmp_path / "out"
    args = ["suite", suite, "-o", str(out), "--executor", "slurm[poll=1]"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_IN_THE_SUBMIT_WINDOW, where, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    orphans = scheduler.jobs_by_comment() or {}
    (token,) = Ledger(out).intents()
    (array,) = orphans[token]
    again = _dstbench(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert list(_statuses(out).values()) == ["ok", "ok"]
    arrays = {e.job_id.split("_")[0] for e in Ledger(out).load().values()}
    if where == "ledger":  # its tasks could run: adopted, nothing submitted again
        assert f"slurm: adopted job {array}" in again.stdout + again.stderr
        assert arrays == {array}
    else:  # its tasks had no work to find: cancelled, the runs submitted again
        assert f"slurm: cancelled job {array}" in again.stdout + again.stderr
        assert array not in arrays
        # nothing of it is left holding the node (it may have failed before the cancel)
        assert scheduler.job_states([f"{array}_0"])[f"{array}_0"].phase == "ended"
    assert Ledger(out).intents() == {}
    # submitit leaves a link to each submitted script; no pickle or script of its own
    strays = [p.name for p in (out / "slurm").iterdir() if p.is_file() and not p.is_symlink()]
    assert strays == []


def test_status_counts_one_run_of_a_running_pack_as_running(tmp_path):
    (tmp_path / "s.toml").write_text(SUITE.format(epochs=1000).replace("[0]", "[0, 1]"))
    suite, out = str(tmp_path / "s.toml"), tmp_path / "out"
    queued = _dstbench(
        "suite", suite, "-o", str(out), "--detach", "--executor", "slurm[poll=1,pack=2]"
    )
    assert queued.returncode == 0, queued.stdout + queued.stderr
    (job_id,) = {e.job_id for e in Ledger(out).load().values()}
    try:
        _wait_for(lambda: _running(out), 120, "the pack's task to run")
        status = _dstbench("status", suite, "-o", str(out))
    finally:
        subprocess.run(["scancel", job_id], check=False)
    assert status.returncode == 0, status.stdout + status.stderr
    header, _, row = (re.split(r"\s{2,}", line.strip()) for line in status.stdout.splitlines()[:3])
    counts = dict(zip(header, row, strict=True))
    assert (counts["running"], counts["pending"]) == ("1", "1"), status.stdout
