"""The result store: atomic records, statuses, leftovers of killed writers, the lock."""

from __future__ import annotations

import json

import pytest

from dstbench.errors import SuiteError
from dstbench.io import write_json_atomic
from dstbench.suite.store import MISSING, RunStore


def record(run_id, status="ok", **extra):
    return {"run_id": run_id, "status": status, "spec": {"seed": 0}, **extra}


def test_write_then_load_and_status(tmp_path):
    store = RunStore(tmp_path)
    path = store.write(record("abc", metrics={"test_accuracy": 0.5}))
    assert path == tmp_path / "runs" / "abc.json"
    assert store.load("abc")["metrics"] == {"test_accuracy": 0.5}
    assert store.status("abc") == "ok"
    assert store.status("nope") == MISSING
    store.write(record("def", "diverged"))
    assert store.statuses(["abc", "def", "x"]) == {"abc": "ok", "def": "diverged", "x": MISSING}
    # one file per run, nothing else left behind
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["abc.json", "def.json"]


@pytest.mark.parametrize(
    "content",
    ['{"run_id": "abc", "status": "ok"', "", "[]", '{"run_id": "abc", "status": "running"}'],
    ids=["truncated", "empty", "not-a-dict", "unknown-status"],
)
def test_an_unreadable_record_counts_as_not_run(tmp_path, content):
    store = RunStore(tmp_path)
    store.runs.mkdir(parents=True)
    (store.runs / "abc.json").write_text(content)
    assert store.load("abc") is None
    assert store.status("abc") == MISSING


def test_temporaries_of_killed_writers_are_cleaned(tmp_path):
    store = RunStore(tmp_path)
    store.write(record("abc"))
    (store.runs / ".def.json.x1y2.tmp").write_text('{"half": ')
    assert store.clean_temporaries() == 1
    assert sorted(p.name for p in store.runs.iterdir()) == ["abc.json"]


def test_atomic_write_keeps_the_old_record_when_the_new_one_cannot_be_written(tmp_path):
    store = RunStore(tmp_path)
    store.write(record("abc", note="old"))
    with pytest.raises(TypeError):
        write_json_atomic(store.record_path("abc"), {"run_id": "abc", "bad": object()})
    assert store.load("abc")["note"] == "old"
    assert [p.name for p in store.runs.iterdir()] == ["abc.json"]  # no temporary left


def test_manifest_round_trip(tmp_path):
    store = RunStore(tmp_path)
    assert store.read_manifest() is None
    store.write_manifest("quick", "desc", "suites/quick.toml", [{"run_id": "a", "spec": {"x": 1}}])
    manifest = store.read_manifest()
    assert manifest == {
        "suite": "quick",
        "description": "desc",
        "source": "suites/quick.toml",
        "runs": [{"run_id": "a", "spec": {"x": 1}}],
    }
    (tmp_path / "suite.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(SuiteError, match="not a dstbench suite manifest"):
        store.read_manifest()


def test_a_second_driver_on_the_same_results_is_refused(tmp_path):
    store = RunStore(tmp_path)
    refused = pytest.raises(SuiteError, match="another dstbench suite is running")
    with store.lock(), refused, RunStore(tmp_path).lock():
        pass
    with RunStore(tmp_path).lock():  # released when the holder is done
        pass
