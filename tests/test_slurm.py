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
EXECUTION_KEYS = ("timings", "provenance", "execution", "checkpoints")


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
