"""The result store: atomic records, statuses, trust, leftovers of killed writers, the lock."""

from __future__ import annotations

import json
import os

import pytest
from handmade import new_record

from dstbench.contracts.spec import spec_hash
from dstbench.engine.spec import normalize_spec
from dstbench.errors import SuiteError
from dstbench.io import write_json_atomic
from dstbench.plugins import get_plugins
from dstbench.suite.store import MISSING, RunStore

_IDS: dict[str, str] = {}


def record(name, status="ok", seed=None, **extra):
    """A real record (its spec hashes to its id); ``name`` picks a seed, so a distinct run."""
    seed = seed if seed is not None else sum(map(ord, name))
    spec = normalize_spec(
        {"model": "mlp", "dataset": "digits", "seed": seed}, get_plugins().registry
    )
    out = new_record(spec, spec_hash(spec))
    out["status"] = status
    if status == "ok":
        out["metrics"]["test_accuracy"] = 0.5
    out.update(extra)
    _IDS[name] = out["run_id"]
    return out


def test_write_then_load_and_status(tmp_path):
    store = RunStore(tmp_path)
    abc = record("abc", metrics={"test_accuracy": 0.5})
    path = store.write(abc)
    assert path == tmp_path / "runs" / f"{abc['run_id']}.json"
    assert store.load(abc["run_id"])["metrics"] == {"test_accuracy": 0.5}
    assert store.status(abc["run_id"]) == "ok"
    assert store.status("nope") == MISSING
    dfe = record("def", "diverged")
    store.write(dfe)
    ids = [abc["run_id"], dfe["run_id"], "x"]
    assert store.statuses(ids) == dict(zip(ids, ["ok", "diverged", MISSING], strict=True))
    # one file per run, nothing else left behind
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == sorted(f"{r['run_id']}.json" for r in (abc, dfe))


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
    abc = record("abc")
    store.write(abc)
    (store.runs / ".def.json.x1y2.tmp").write_text('{"half": ')
    assert store.clean_temporaries() == 1
    assert sorted(p.name for p in store.runs.iterdir()) == [f"{abc['run_id']}.json"]


def test_atomic_write_keeps_the_old_record_when_the_new_one_cannot_be_written(tmp_path):
    store = RunStore(tmp_path)
    abc = record("abc", note="old")
    run_id = abc["run_id"]
    store.write(abc)
    with pytest.raises(TypeError):
        write_json_atomic(store.record_path(run_id), {"run_id": run_id, "bad": object()})
    assert store.load(run_id)["note"] == "old"
    assert [p.name for p in store.runs.iterdir()] == [f"{run_id}.json"]  # no temporary left


def _tamper(good, how):
    bad = json.loads(json.dumps(good))
    if how == "copied-over-another-run":
        return bad, record("other")["run_id"]  # the right record under another run's name
    if how == "spec-edited":
        bad["spec"]["lr"] = 1.0
    elif how == "no-metrics":
        del bad["metrics"]
    elif how == "accuracy-missing":
        bad["metrics"]["test_accuracy"] = None
    elif how == "accuracy-a-string":
        bad["metrics"]["test_accuracy"] = "0.99"
    elif how == "no-spec-fields":
        bad["spec"] = {"seed": 0}
    return bad, good["run_id"]


@pytest.mark.parametrize(
    "how",
    [
        "copied-over-another-run",
        "spec-edited",
        "no-metrics",
        "accuracy-missing",
        "accuracy-a-string",
        "no-spec-fields",
    ],
)
def test_an_untrusted_record_is_reported_moved_aside_and_its_run_is_missing(tmp_path, how):
    store = RunStore(tmp_path)
    bad, file_id = _tamper(record("abc"), how)
    store.runs.mkdir(parents=True)
    path = store.runs / f"{file_id}.json"
    path.write_text(json.dumps(bad))
    assert store.load(file_id) is None
    assert store.status(file_id) == MISSING
    lines = store.quarantine_untrusted()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: untrusted record (")
    assert not path.exists()
    assert json.loads((tmp_path / "quarantine" / path.name).read_text()) == bad


def test_a_non_finite_accuracy_is_written_as_strict_json_and_not_trusted(tmp_path):
    store = RunStore(tmp_path)
    good = record("abc")
    good["metrics"]["test_accuracy"] = float("nan")
    good["metrics"]["curve"] = [{"train_loss": float("inf")}]
    path = store.write(good)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c}"))
    assert loaded["metrics"]["test_accuracy"] is None
    assert loaded["metrics"]["curve"] == [{"train_loss": None}]
    assert store.status(good["run_id"]) == MISSING


def test_records_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = RunStore(tmp_path).write(record("abc"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


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
