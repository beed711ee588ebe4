"""How dstbench reads SLURM's words: array ranges from ``sacct``, pending reasons."""

from __future__ import annotations

import pytest

from dstbench.suite import scheduler


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("111_[0-1%2]", ["111_0", "111_1"]),
        ("111_[0-2,5,7-8]", ["111_0", "111_1", "111_2", "111_5", "111_7", "111_8"]),
        ("111_[4]", ["111_4"]),
        ("111_3", ["111_3"]),
        ("111", ["111"]),
    ],
)
def test_sacct_array_ranges_are_read_task_by_task(job_id, expected):
    assert scheduler.expand_array_range(job_id) == expected


def test_reasons_that_never_clear_are_told_from_those_that_do():
    assert scheduler.never_clears("PartitionConfig")
    assert scheduler.never_clears("InvalidAccount")
    assert not scheduler.never_clears("Resources")
    assert not scheduler.never_clears("Priority")
    assert not scheduler.never_clears("BeginTime")
    assert scheduler.reason_hint("Resources") == ": waiting for free CPUs, GPUs or memory"
    assert scheduler.reason_hint("SomethingNew") == ""


def test_an_array_that_never_started_speaks_for_its_tasks(monkeypatch):
    """``sacct`` lists an array cancelled before any task started under the array's id."""
    lines = (
        "10|CANCELLED by 0|None|0:0\n11_0|COMPLETED|None|0:0\n11_[1-2%1]|CANCELLED by 0|None|0:0\n"
    )
    monkeypatch.setattr(scheduler, "_run", lambda command: scheduler.Answer(lines))
    states = scheduler.sacct_states(["10_0", "10_1", "11_0", "11_1", "11_2"])
    assert {k: v.state for k, v in states.items() if "_" in k} == {
        "10_0": "CANCELLED by 0",
        "10_1": "CANCELLED by 0",
        "11_0": "COMPLETED",
        "11_1": "CANCELLED by 0",
        "11_2": "CANCELLED by 0",
    }
