"""How the ``slurm`` executor packs runs into array tasks, without a cluster: the slots read
from ``sinfo``'s text, the number of tasks, the balanced assignment and the line that says
why."""

from __future__ import annotations

import pytest

from dstbench.contracts.execution import Job
from dstbench.engine.spec import build_spec
from dstbench.errors import SuiteError
from dstbench.plugins import get_plugins
from dstbench.suite import scheduler
from dstbench.suite.scheduler import partition_slots
from dstbench.suite.slurm import SlurmExecutor, auto_tasks, balanced_packs

#: ``sinfo -h -N -o "%N|%P|%c|%m|%G|%t"`` of a small cluster: a default CPU partition of two
#: nodes (one drained), a GPU partition.
REGISTRY = get_plugins().registry

SINFO = """\
cpu1|main*|32|128000|(null)|mix
cpu2|main*|32|128000|(null)|drain
cpu3|main*|16|64000+|(null)|idle~
gpu1|gpu|64|512000|gpu:a100:4(S:0-1)|alloc
gpu2|gpu|64|512000|gpu:4|idle
gpu1|debug|64|512000|gpu:a100:4(S:0-1)|alloc
"""


def jobs(count: int, spec: dict | None = None) -> list[Job]:
    """``count`` jobs ``r0``, ``r1``, ... (ids of our own: the order is what counts)."""
    built = build_spec(spec or {"model": "mlp", "dataset": "digits", "epochs": 1}, REGISTRY)
    return [Job(f"r{i}", built, f"/x/runs/r{i}.json", f"run {i}") for i in range(count)]


def test_slots_count_each_usable_node_of_the_partition_by_cpus():
    slots = partition_slots(SINFO, "", cpus_per_task=4)
    # the default partition; the drained node holds nothing; 32/4 + 16/4
    assert (slots.count, slots.nodes, slots.limit, slots.partition) == (12, 2, "CPUs", "main")
    assert partition_slots(SINFO, "main", cpus_per_task=5).count == 6 + 3
    assert partition_slots(SINFO, "main", cpus_per_task=64).count == 0


def test_slots_are_bounded_by_gpus_and_memory_when_asked():
    gpus = partition_slots(SINFO, "gpu", cpus_per_task=4, gpus_per_job=1)
    assert (gpus.count, gpus.nodes, gpus.limit) == (8, 2, "GPUs")
    assert partition_slots(SINFO, "gpu", cpus_per_task=4).count == 32  # GPUs not asked for
    memory = partition_slots(SINFO, "main", cpus_per_task=1, mem_gb=31.25)
    assert (memory.count, memory.limit) == (4 + 2, "memory")
    assert partition_slots(SINFO, "nosuch", cpus_per_task=1).count == 0
    assert partition_slots("garbage\n\n", "", cpus_per_task=1).count == 0


def test_auto_tasks_is_what_runs_at_once_and_no_more():
    assert auto_tasks(12, 2, None, 60) == (2, "")
    assert auto_tasks(3, 8, None, 60) == (3, "")
    assert auto_tasks(5, 0, None, 60) == (1, "")  # nothing fits: one task, SLURM says why
    assert auto_tasks(5, None, None, 60) == (5, "")  # sinfo silent: one task per run
    assert auto_tasks(0, 4, None, 60) == (0, "")


def test_auto_tasks_keeps_each_task_within_half_its_time_limit():
    # 10 runs of 60 s, 2 slots, a 10-minute limit: 300 s a task at most -> 2 tasks suffice
    assert auto_tasks(10, 2, [60.0] * 10, 10) == (2, "")
    # a 4-minute limit: 120 s a task -> 5 tasks of 2 runs
    count, why = auto_tasks(10, 2, [60.0] * 10, 4)
    assert count == 5 and "half its 4-min time limit" in why
    # one run longer than half the limit: one task per run
    assert auto_tasks(3, 1, [10.0, 10.0, 500.0], 10)[0] == 3


def test_balanced_packs_round_robin_without_estimates():
    packs = balanced_packs(jobs(7), 3)
    assert [[j.run_id for j in p] for p in packs] == [
        ["r0", "r3", "r6"],
        ["r1", "r4"],
        ["r2", "r5"],
    ]
    assert balanced_packs(jobs(2), 5) == [[j] for j in jobs(2)]
    # A suite that alternates two criteria: dealt as they come, one task would get all the
    # runs of each; dealt cell by cell, each task gets two runs of each.
    specs = [
        {"model": "mlp", "dataset": "digits", "epochs": 1, "criterion": c, "seed": s}
        for s in range(4)
        for c in ("magnitude", "set")
    ]
    mixed = [
        Job(f"r{i}", build_spec(spec, REGISTRY), f"/x/r{i}.json", "x")
        for i, spec in enumerate(specs)
    ]
    packs = balanced_packs(mixed, 2)
    assert [[j.run_id for j in p] for p in packs] == [
        ["r0", "r1", "r4", "r5"],
        ["r2", "r3", "r6", "r7"],
    ]
    for pack in packs:
        assert sorted(j.spec["criterion"]["name"] for j in pack) == ["magnitude"] * 2 + ["set"] * 2
    assert balanced_packs([], 3) == []


def test_balanced_packs_longest_first_to_the_least_loaded_task_with_estimates():
    seconds = [100.0, 10.0, 10.0, 10.0, 60.0, 30.0]
    packs = balanced_packs(jobs(6), 2, seconds)
    loads = [sum(seconds[int(j.run_id[1:])] for j in p) for p in packs]
    assert loads == [110.0, 110.0]  # 100+10 | 60+30+10+10
    assert all(p == sorted(p, key=lambda j: int(j.run_id[1:])) for p in packs)  # suite order


def _executor(monkeypatch, **params) -> SlurmExecutor:
    monkeypatch.setattr("dstbench.suite.slurm._requirements", lambda: None)
    return SlurmExecutor(**params)


def test_the_shape_line_says_tasks_runs_per_task_and_why(monkeypatch):
    monkeypatch.setattr(scheduler, "sinfo_slots", lambda *a: partition_slots(SINFO, "", *a[1:]))
    packs, line = _executor(monkeypatch, cpus_per_task=8).packs(jobs(12), None)
    assert [len(p) for p in packs] == [2] * 6
    assert line == (
        "slurm: 12 runs in 6 array tasks of 2 runs (pack auto: partition main holds 6 tasks at "
        "once (2 nodes, by CPUs: cpus_per_task = 8))"
    )
    packs, line = _executor(monkeypatch, array_parallelism=5).packs(jobs(12), None)
    assert [len(p) for p in packs] == [3, 3, 2, 2, 2]
    assert line == "slurm: 12 runs in 5 array tasks of 2-3 runs (pack auto: array_parallelism = 5)"
    packs, line = _executor(monkeypatch, pack=4).packs(jobs(12), None)
    assert [j.run_id for j in packs[0]] == ["r0", "r1", "r2", "r3"]  # as before
    assert line == "slurm: 12 runs in 3 array tasks of 4 runs (pack = 4)"
    monkeypatch.setattr(scheduler, "sinfo_slots", lambda *a: "sinfo: no controller")
    packs, line = _executor(monkeypatch).packs(jobs(3), None)
    assert len(packs) == 3
    assert "sinfo does not answer (sinfo: no controller): one task per run" in line


def test_the_shape_uses_estimates_from_finished_runs_alike(monkeypatch, tmp_path):
    from dstbench.io import write_json_atomic

    monkeypatch.setattr(scheduler, "sinfo_slots", lambda *a: partition_slots(SINFO, "", *a[1:]))
    todo = jobs(8, {"model": "mlp", "dataset": "digits", "epochs": 1, "density": 0.1})
    record = {"status": "ok", "spec": todo[0].spec.to_json(), "timings": {"total_seconds": 100}}
    write_json_atomic(tmp_path / "runs" / "old.json", record)
    # 8 runs of 100 s, a 2-minute limit (60 s a task): one run per task
    packs, line = _executor(monkeypatch, array_parallelism=2, time=2).packs(todo, tmp_path)
    assert len(packs) == 8
    assert "8 tasks keep each within half its 2-min time limit" in line
    # a 20-minute limit (600 s a task): the 2 slots suffice
    packs, line = _executor(monkeypatch, array_parallelism=2, time=20).packs(todo, tmp_path)
    assert [len(p) for p in packs] == [4, 4] and "time limit" not in line


def test_a_negative_pack_is_refused_in_one_line():
    with pytest.raises(SuiteError) as caught:
        SlurmExecutor(pack=-1)
    assert str(caught.value) == (
        "executor 'slurm' parameter 'pack' expects an integer >= 1, or 0 for automatic, got -1"
    )
