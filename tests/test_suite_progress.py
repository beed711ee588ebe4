"""Progress: plain lines off a terminal, a redrawn line on one; counts, failures, ETA."""

from __future__ import annotations

import io

import pytest

from dstbench.errors import SuiteError
from dstbench.suite.local import worker_devices
from dstbench.suite.progress import ProgressDisplay, format_duration


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def ok(accuracy, seconds):
    return {
        "status": "ok",
        "metrics": {"test_accuracy": accuracy},
        "timings": {"total_seconds": seconds},
    }


def test_format_duration():
    assert [format_duration(s) for s in (0.04, 9.96, 42, 185, 7620)] == [
        "0.0s",
        "10.0s",
        "42s",
        "3m05s",
        "2h07m",
    ]


def test_plain_mode_prints_one_line_per_run_and_heartbeats():
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(
        stream, total=10, done=6, to_run=4, live=False, heartbeat=30, clock=clock
    )
    display.run_started("a", "magnitude/random mlp/digits d=0.1 seed=0", "w0 (cpu)")
    display.run_started("b", "set/random mlp/digits d=0.1 seed=0", "w1 (cpu)")
    clock.now = 10
    display.run_progress("a", 5, 10)
    assert stream.getvalue() == ""  # no heartbeat yet
    clock.now = 20
    display.run_finished("a", "magnitude/random mlp/digits d=0.1 seed=0", ok(0.97531, 20))
    clock.now = 40
    display.run_progress("b", 3, 10)  # 30 s after the start: a status line
    failed = {"status": "failed", "error": {"type": "RuntimeError", "message": "boom"}}
    display.run_finished("b", "set/random mlp/digits d=0.1 seed=0", failed)
    display.close()
    lines = stream.getvalue().splitlines()
    assert (
        lines[0]
        == "[ 7/10] ok       magnitude/random mlp/digits d=0.1 seed=0 | test acc 97.53 | 20s"
    )
    # runs take 20 s (the finished one); b is past that, 2 more wait for one worker: 40 s;
    # 1 run in the 40 s since the first start: 90 runs/h
    assert lines[1] == (
        "[7/10 done, 90/h, ETA 40s] w1 (cpu): set/random mlp/digits d=0.1 seed=0 "
        "epoch 3/10, running 40s"
    )
    assert lines[2] == ("[ 8/10] failed   set/random mlp/digits d=0.1 seed=0 | RuntimeError: boom")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    # two runs took 20 s and 40 s: 30 s each for the last 2; 2 runs in 40 s: 180/h
    assert display.counts_text() == "8/10 done, 1 failed, 180/h, ETA 1m00s"


def test_eta_comes_from_run_times_not_worker_start_up():
    clock = Clock()
    display = ProgressDisplay(
        io.StringIO(), total=4, done=0, to_run=4, live=False, workers=2, clock=clock
    )
    clock.now = 100  # workers took 100 s to start and load their data
    display.run_started("a", "a", "w0")
    display.run_started("b", "b", "w1")
    assert display.eta_seconds() is None  # nothing measured yet
    clock.now = 105
    display.run_progress("a", 1, 2)  # half of a run in 5 s: runs take 10 s
    assert display.eta_seconds() == pytest.approx((5 + 5 + 2 * 10) / 2)
    clock.now = 110
    display.run_finished("a", "a", ok(0.5, 10))
    display.run_finished("b", "b", ok(0.5, 10))
    assert display.eta_seconds() == pytest.approx(10)  # 2 runs of 10 s on 2 workers


def test_every_running_job_shows_its_elapsed_time():
    clock = Clock()
    display = ProgressDisplay(io.StringIO(), total=2, done=0, to_run=2, live=False, clock=clock)
    display.run_started("a", "run a", "w0")
    clock.now = 65
    display.run_started("b", "run b", "w1")
    clock.now = 200
    assert display.job_lines() == [
        "w0: run a, running 3m20s",
        "w1: run b, running 2m15s",
    ]


def test_live_mode_draws_a_bar_and_a_line_per_running_job():
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(stream, total=2, done=0, to_run=2, live=True, clock=clock)
    display.run_started("a", "dense mlp/digits seed=0", "w0 (cpu)")
    clock.now = 4
    display.run_progress("a", 2, 4)
    text = stream.getvalue()
    assert "━" in text  # rich's bar
    assert "elapsed 4.0s, 0/2 done, ETA 12s" in text  # 2/4 epochs in 4 s: 4 + 8 s left
    assert "w0 (cpu): dense mlp/digits seed=0 epoch 2/4, running 4.0s" in text
    display.run_finished("a", "dense mlp/digits seed=0", ok(0.5, 4.0))
    display.close()
    final = stream.getvalue()
    assert "[1/2] ok       dense mlp/digits seed=0 | test acc 50.00 | 4.0s" in final


def test_workers_get_devices_round_robin(monkeypatch):
    import torch

    assert worker_devices("cpu", 3) == ["cpu"] * 3
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert worker_devices("auto", 2) == ["cpu", "cpu"]
    with pytest.raises(SuiteError, match="--device cuda:1: no CUDA device is available"):
        worker_devices("cuda:1", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert worker_devices("cuda:1", 2) == ["cuda:1", "cuda:1"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert worker_devices("auto", 3) == ["cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices("cuda", 2) == ["cuda:0", "cuda:1"]


def test_a_heartbeat_of_a_big_batched_group_is_short_with_a_sane_eta():
    """16 runs trained together by one worker (the batched engine), in a log."""
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(
        stream, total=32, done=0, to_run=32, live=False, heartbeat=30, clock=clock, workers=1
    )
    label = "magnitude/random mlp/digits d=0.1 seed={} with a long label of a swept key=1"
    for i in range(16):
        display.run_started(f"r{i}", label.format(i), "w0 (cpu)")
    clock.now = 30
    for i in range(16):
        display.run_progress(f"r{i}", 15, 30)  # half way after 30 s: 60 s per group of 16
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 500, lines
    assert lines[0].endswith("(+13 more)")
    # 30 s left for these 16, then the next 16 together: 90 s, not 16 x 60 s
    assert "ETA 1m30s" in lines[0]


def test_a_run_without_epoch_reports_shows_no_epoch_count():
    """SLURM and Dask runs report no epochs to the driver: no "epoch 0/?"."""
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(stream, total=1, done=0, to_run=1, live=False, clock=clock)
    display.run_started("a", "magnitude/random mlp/digits d=0.1 seed=0", "slurm 12_0")
    clock.now = 65
    assert display.job_lines() == [
        "slurm 12_0: magnitude/random mlp/digits d=0.1 seed=0, running 1m05s"
    ]
