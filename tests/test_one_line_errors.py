"""Where a traceback was, one line: a huge suite, a full disk at the lock, a suite name with a
newline, sweeping seeds, bool scores, a check-plugin that never ends."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dstbench import hookimpl, prune
from dstbench.cli import main
from dstbench.errors import CriterionError, DstbenchError
from dstbench.io import OutputError
from dstbench.leaderboard.data import Entry
from dstbench.leaderboard.sweep import check_key
from dstbench.suite import RunStore


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line(capsys, code: int) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("dstbench: error: "), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return captured.err


def test_a_suite_larger_than_max_runs_is_refused_before_it_is_expanded(workdir, capsys):
    (workdir / "big.toml").write_text(
        'model = "mlp"\ndataset = "digits"\ndensities = [0.1, 0.2]\nseeds = [0, 1, 2, 3]\n'
    )
    err = one_line(capsys, main(["suite", "big.toml", "--max-runs", "5"]))
    assert "big.toml: suite 'big' has up to 8 runs, more than --max-runs 5" in err
    assert not (workdir / "results").exists()


def test_a_suite_name_with_a_trailing_newline_is_refused(workdir, capsys):
    (workdir / "s.toml").write_text('name = "nl\\n"\nmodel = "mlp"\ndataset = "digits"\n')
    err = one_line(capsys, main(["suite", "s.toml", "--dry-run"]))
    assert "s.toml: name:" in err


def test_a_full_disk_at_the_lock_is_one_line(tmp_path, monkeypatch):
    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OutputError, match="no space left on device"), RunStore(tmp_path).lock():
        pass


def test_seeds_are_not_a_sweep_key_and_say_so():
    entries = [
        Entry(f"r{seed}", {"model": {"name": "mlp"}, "seed": seed, "density": 0.1}, "ok", None)
        for seed in (0, 1, 2)
    ]
    with pytest.raises(
        DstbenchError, match=r"'seed' cannot be swept \(seeds are the replicates"
    ) as e:
        check_key(entries, "seed", "results")
    assert "takes one value only" not in str(e.value)


class BoolScores:
    @hookimpl
    def dstbench_register_criteria(self, register):
        def boolish(ctx):
            """Positive weights score True."""
            return ctx.weight > 0

        register("boolish", boolish)


def test_bool_scores_are_refused_in_one_line(use_plugins):
    use_plugins(("boolish", BoolScores()))
    weight, mask = torch.randn(4, 4), torch.ones(4, 4, dtype=torch.bool)
    with pytest.raises(CriterionError, match="scores must be real numbers, got a bool tensor"):
        prune("boolish", weight, mask, 3)


HANGING = '''
from dstbench import hookimpl


@hookimpl
def dstbench_register_schedules(register):
    def forever(step, total_steps, initial):
        """Never answers."""
        while True:
            pass

    register("forever", forever)
'''


def test_check_plugin_fails_a_component_that_never_answers(workdir, capsys):
    (workdir / "hanging_plugin.py").write_text(HANGING)
    code = main(["check-plugin", "hanging_plugin.py", "--time-limit", "2", "--no-train"])
    out = capsys.readouterr().out
    assert code == 1
    assert "answers within the time limit" in out and "did not finish within 2s" in out


def test_a_worker_killed_while_starting_is_replaced(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('model = "mlp[hidden=[8]]"\ndataset = "digits"\nepochs = 1\nseeds = [0]\n')
    marker = tmp_path / "killed"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent / "plugins"),
        "DSTBENCH_PLUGIN_MODULES": "dies_at_start_plugin",
        "DIES_AT_START_MARKER": str(marker),
    }
    command = [sys.executable, "-m", "dstbench", "suite", str(suite), "-o", str(tmp_path / "o")]
    command += ["-j", "1", "--device", "cpu", "--progress", "plain", "--no-leaderboard"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert marker.read_text() == "killed once"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 done" in done.stdout and "__main__" not in done.stderr
