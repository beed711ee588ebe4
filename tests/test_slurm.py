"""The ``slurm`` executor against a real one-node SLURM cluster (``.ci/slurm-up.sh``): real
``sbatch``, ``squeue``, ``sacct``, ``scancel`` and ``scontrol requeue``.

Locally these tests skip without a cluster; in CI they fail instead.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from engines import require_slurm

from dstbench.io import read_json
from dstbench.suite import scheduler
from dstbench.suite.ledger import Ledger

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

#: A dozen tiny runs.
DOZEN = """
name = "dozen"
model = "mlp"
dataset = "digits"
epochs = 2
densities = [0.1, 0.2]
criteria = ["magnitude", "set"]
growth = ["random"]
seeds = [0, 1, 2]
"""

#: One run long enough to be caught running (checkpointed every epoch), one short run.
LONG_AND_SHORT = """
name = "long"
model = "mlp"
dataset = "digits"
epochs = {epochs}
checkpoint_every = 1
densities = [0.1]
criteria = ["magnitude"]
growth = ["random"]
seeds = {seeds}
"""

#: What may differ between two executions of the same run.
EXECUTION_KEYS = ("timings", "provenance", "execution", "checkpoint", "digest")


@pytest.fixture(autouse=True)
def _cluster():
    require_slurm()


def comparable(record: dict) -> dict:
    """A record without what depends on where and when it ran."""
    record = {k: v for k, v in record.items() if k not in EXECUTION_KEYS}
    metrics = dict(record["metrics"])
    metrics["curve"] = [{k: v for k, v in e.items() if k != "seconds"} for e in metrics["curve"]]
    record["metrics"] = metrics
    record["spec"] = {k: v for k, v in record["spec"].items() if k != "checkpoint_every"}
    return record


def records(root: Path) -> dict[str, dict]:
    return {p.stem: read_json(p) for p in sorted((root / "runs").glob("*.json"))}


def dstbench(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        **kwargs,
    )


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def board_without_executor(root: Path) -> list[str]:
    text = (root / "leaderboard.md").read_text()
    return [line for line in text.splitlines() if not line.startswith("| executor")]


def test_a_dozen_runs_give_the_local_records_with_and_without_packing(tmp_path):
    (tmp_path / "s.toml").write_text(DOZEN)
    suite = str(tmp_path / "s.toml")
    local = dstbench("suite", suite, "-o", str(tmp_path / "local"), "-j", "2")
    assert local.returncode == 0, local.stdout + local.stderr
    outputs = {}
    for pack in (1, 4):
        out = tmp_path / f"slurm{pack}"
        done = dstbench("suite", suite, "-o", str(out), "--executor", f"slurm[poll=1,pack={pack}]")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "12 done" in done.stdout
        outputs[pack] = out

    expected = {k: comparable(r) for k, r in records(tmp_path / "local").items()}
    assert len(expected) == 12
    for pack, out in outputs.items():
        got = records(out)
        assert {k: comparable(r) for k, r in got.items()} == expected
        ledger = Ledger(out).load()
        jobs = {e.job_id for e in ledger.values()}
        assert len(jobs) == 12 // pack  # one array task per `pack` runs
        assert len({j.split("_")[0] for j in jobs}) == 1  # one array
        for run_id, record in got.items():
            job_id = ledger[run_id].job_id
            assert record["execution"]["executor"] == "slurm"
            assert record["execution"]["worker"].startswith(f"slurm {job_id}@")
            assert (out / "slurm" / job_id / f"{job_id}_0_log.out").is_file()
        states = scheduler.job_states(sorted(jobs))
        assert {s.phase for s in states.values()} == {"ended"}
        # Where a run executes changes nothing in the leaderboard either.
        assert board_without_executor(out) == board_without_executor(tmp_path / "local")


def test_auto_pack_fills_the_slots_dealing_cells_and_a_batched_pack_gives_the_local_records(
    tmp_path,
):
    """The default pack: one array task per slot of the partition (``sinfo``), each cell's
    runs dealt round-robin; each task trains its runs as one batched group."""
    (tmp_path / "s.toml").write_text(DOZEN + 'engine = "batched"\n')
    suite = str(tmp_path / "s.toml")
    local = dstbench("suite", suite, "-o", str(tmp_path / "local"), "-j", "2")
    assert local.returncode == 0, local.stdout + local.stderr
    out = tmp_path / "auto"
    preview = dstbench("suite", suite, "-o", str(out), "--executor", "slurm[poll=1]", "--dry-run")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    done = dstbench("suite", suite, "-o", str(out), "--executor", "slurm[poll=1]")
    assert done.returncode == 0, done.stdout + done.stderr
    slots = scheduler.sinfo_slots("", 1)
    assert isinstance(slots, scheduler.Slots) and slots.count >= 1, slots
    tasks = min(12, slots.count)
    said = [line for line in done.stdout.splitlines() if line.startswith("slurm: 12 runs in")]
    assert len(said) == 1, done.stdout
    assert said[0].startswith(f"slurm: 12 runs in {tasks} array task")
    assert f"(pack auto: partition {slots.partition} holds {slots.count} task" in said[0]
    assert said[0] in preview.stdout.splitlines()  # the preview tells the same shape
    assert f"with {tasks} worker(s)" in preview.stdout

    ledger = Ledger(out).load()
    packs = {e.job_id: e.pack for e in ledger.values()}
    assert len(packs) == tasks and len({j.split("_")[0] for j in packs}) == 1  # one array
    assert sorted(r for p in packs.values() for r in p) == sorted(ledger)
    assert max(map(len, packs.values())) - min(map(len, packs.values())) <= 1
    got = records(out)
    if tasks <= 3:  # each task has 4 runs or more: some of each criterion and density
        for pack in packs.values():
            assert {got[r]["spec"]["criterion"]["name"] for r in pack} == {"magnitude", "set"}
            assert {got[r]["spec"]["density"] for r in pack} == {0.1, 0.2}
    states: dict = {}

    def accounted() -> bool:
        states.update(scheduler.sacct_states(sorted(packs)) or {})
        return len(states) == tasks

    wait_for(accounted, 60, "the tasks in accounting")
    assert {s.state for s in states.values()} == {"COMPLETED"}, states

    expected = {k: comparable(r) for k, r in records(tmp_path / "local").items()}
    assert {k: comparable(r) for k, r in got.items()} == expected
    for run_id, record in got.items():
        assert record["execution"]["engine"] == "batched"
        # the task's runs were trained together, in one group
        assert record["timings"]["group_size"] == len(ledger[run_id].pack)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-2", "parameter 'pack' expects an integer >= 1, or 0 for automatic, got -2"),
        # the registry's type check, before the executor is built
        ('"auto"', "parameter 'pack' expects int (default 0), got str 'auto'"),
    ],
)
def test_a_bad_pack_in_a_suite_file_is_one_line_naming_the_file_and_key(tmp_path, value, says):
    path = tmp_path / "bad.toml"
    path.write_text(DOZEN + f'executor = {{name = "slurm", pack = {value}}}\n')
    out = tmp_path / "out"
    done = dstbench("suite", str(path), "-o", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"dstbench: error: {path}: {'executor: ' if 'auto' in value else ''}executor 'slurm' {says}"
    ]
    assert not out.exists()


def _long_suite(tmp_path: Path, epochs: int, seeds: str = "[0, 1]") -> str:
    path = tmp_path / "long.toml"
    path.write_text(LONG_AND_SHORT.format(epochs=epochs, seeds=seeds))
    return str(path)


def _driver(args: list[str]) -> subprocess.Popen:
    """``dstbench ARGS`` in the background, its output collected."""
    return subprocess.Popen(
        [sys.executable, "-m", "dstbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _running_job(out: Path) -> tuple[str, str]:
    """(run id, array task id) of a run whose task SLURM says is running, once one is."""
    found: list[tuple[str, str]] = []

    def running() -> bool:
        if not (out / "jobs.json").exists():
            return False
        entries = Ledger(out).load()
        states = scheduler.job_states(sorted({e.job_id for e in entries.values()}))
        found[:] = [
            (run_id, e.job_id)
            for run_id, e in entries.items()
            if states.get(e.job_id) is not None and states[e.job_id].phase == "running"
        ]
        return bool(found) and (out / "checkpoints").is_dir()

    wait_for(running, 120, "a running task with a checkpoint")
    return found[0]


def test_scancel_of_a_task_fails_its_run_with_the_reason_and_a_rerun_resumes_it(tmp_path):
    suite = _long_suite(tmp_path, epochs=150)
    out = tmp_path / "out"
    args = ["suite", suite, "-o", str(out), "--executor", "slurm[poll=1]"]
    driver = _driver(args)
    run_id, job_id = _running_job(out)
    assert "_" in job_id  # scancel of an array task needs <array>_<task>
    subprocess.run(["scancel", job_id], check=True)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 1, output
    failed = read_json(out / "runs" / f"{run_id}.json")
    assert failed["status"] == "failed"
    assert f"SLURM job {job_id} ended CANCELLED" in failed["error"]["message"]
    assert isinstance(failed["error"].get("log_tail"), str)
    others = [r for k, r in records(out).items() if k != run_id]
    assert [r["status"] for r in others] == ["ok"]
    # The cancelled run checkpointed on SLURM's SIGTERM: the re-run resumes it.
    again = dstbench(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    resumed = read_json(out / "runs" / f"{run_id}.json")
    assert resumed["status"] == "ok" and resumed["checkpoint"]["resumed"]
    # ... and its task's log says so, not only the record
    new_job = Ledger(out).load()[run_id].job_id
    log = (out / "slurm" / new_job / f"{new_job}_0_log.out").read_text()
    assert f"dstbench: {run_id} resumes from its checkpoint at epoch " in log
    # one torch thread, as the SLURM task (cpus_per_task = 1): the same float reductions
    local = dstbench(
        "suite", suite, "-o", str(tmp_path / "local"), "--executor", "local[threads=1]"
    )
    assert local.returncode == 0, local.stdout + local.stderr
    assert comparable(resumed) == comparable(
        read_json(tmp_path / "local" / "runs" / f"{run_id}.json")
    )


def test_scontrol_requeue_of_a_running_task_resumes_from_its_checkpoint(tmp_path):
    """One task: SLURM holds a requeued job about two minutes before it starts again."""
    suite = _long_suite(tmp_path, epochs=150, seeds="[0]")
    out = tmp_path / "out"
    args = ["suite", suite, "-o", str(out), "--executor", "slurm[poll=1]"]
    driver = _driver(args)
    run_id, job_id = _running_job(out)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    output, _ = driver.communicate(timeout=500)
    assert driver.returncode == 0, output
    record = read_json(out / "runs" / f"{run_id}.json")
    assert record["status"] == "ok"
    assert record["checkpoint"]["resumed"], "the requeued task started over"
    # one torch thread, as the SLURM task (cpus_per_task = 1): the same float reductions
    local = dstbench(
        "suite", suite, "-o", str(tmp_path / "local"), "--executor", "local[threads=1]"
    )
    assert local.returncode == 0, local.stdout + local.stderr
    expected = read_json(tmp_path / "local" / "runs" / f"{run_id}.json")
    assert comparable(record) == comparable(expected)


def test_detach_then_status_then_a_rerun_that_submits_nothing_new(tmp_path):
    (tmp_path / "s.toml").write_text(DOZEN.replace("seeds = [0, 1, 2]", "seeds = [0]"))
    suite, out = str(tmp_path / "s.toml"), tmp_path / "out"
    executor = "slurm[poll=1,pack=1]"  # one task per run
    detached = dstbench("suite", suite, "-o", str(out), "--executor", executor, "--detach")
    assert detached.returncode == 0, detached.stdout + detached.stderr
    assert "detached: 4 runs queued" in detached.stdout
    jobs = {e.job_id for e in Ledger(out).load().values()}
    assert len(jobs) == 4
    status = dstbench("status", suite, "-o", str(out))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "mlp/digits" in status.stdout
    wait_for(lambda: len(records(out)) == 4, 300, "the detached runs' records")
    again = dstbench("suite", suite, "-o", str(out), "--executor", executor)
    assert again.returncode == 0, again.stdout + again.stderr
    assert {e.job_id for e in Ledger(out).load().values()} == jobs  # nothing submitted
    assert all(r["status"] == "ok" for r in records(out).values())
