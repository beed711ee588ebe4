"""Result directories made by hand: a suite's manifest and records with chosen accuracies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dstbench.contracts.spec import RunSpec
from dstbench.engine.record import RunLog, assemble_record
from dstbench.suite import RunStore, load_suite

#: spec -> accuracy (a fraction), a status string, or None for no record.
Outcome = Callable[[dict[str, Any]], "float | str | None"]


def new_record(spec: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The JSON form of an empty record for ``spec`` (``failed`` until a test fills it)."""
    record = assemble_record(RunSpec.from_json(spec), RunLog(timings={})).to_json()
    record["run_id"] = run_id
    return record


def write_results(
    root: Path,
    registry: Any,
    suite_text: str,
    outcome: Outcome,
    *,
    extra: Callable[[dict[str, Any]], None] | None = None,
    name: str = "results",
) -> Path:
    """Write ``root/<name>`` with the suite's manifest and a record per cell of ``outcome``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.toml").write_text(suite_text)
    suite = load_suite(root / f"{name}.toml", registry)
    store = RunStore(root / name)
    store.write_manifest(
        suite.name,
        suite.description,
        f"{name}.toml",
        [{"run_id": c.run_id, "spec": c.spec} for c in suite.cells],
    )
    for cell in suite.cells:
        value = outcome(cell.spec)
        if value is None:
            continue
        record = new_record(cell.spec, cell.run_id)
        record["provenance"] = {"dstbench": "0.1.0", "date": "2025-03-01T10:00:00Z"}
        if isinstance(value, str):
            record["status"] = value
            record["reason"] = "made by hand"
        else:
            record["status"] = "ok"
            record["metrics"]["test_accuracy"] = value
            record["metrics"]["best_val_test_accuracy"] = value
        if extra is not None:
            extra(record)
        store.write(record)
    return root / name
