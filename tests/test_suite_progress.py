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
    # 1 run + 3/10 of one done in 40 s, 4 to run: 40 / 1.3 * 2.7 s left
    assert lines[1] == "[7/10 done, ETA 1m23s] w1 (cpu): set/random mlp/digits d=0.1 seed=0 3/10"
    assert lines[2] == ("[ 8/10] failed   set/random mlp/digits d=0.1 seed=0 | RuntimeError: boom")
    assert "\r" not in stream.getvalue()
    assert display.counts_text() == "8/10 done, 1 failed, ETA 40s"


def test_live_mode_redraws_one_status_line():
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(stream, total=2, done=0, to_run=2, live=True, clock=clock)
    display.run_started("a", "dense mlp/digits seed=0", "w0 (cpu)")
    clock.now = 4
    display.run_progress("a", 2, 4)
    text = stream.getvalue()
    assert text.endswith("\r\x1b[K[0/2 done, ETA 12s] w0 (cpu): dense mlp/digits seed=0 2/4")
    display.run_finished("a", "dense mlp/digits seed=0", ok(0.5, 4.0))
    display.close()
    final = stream.getvalue()
    assert "[1/2] ok       dense mlp/digits seed=0 | test acc 50.00 | 4.0s\n" in final
    assert final.endswith("\r\x1b[K")  # the live line is wiped at the end


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
