"""Flat exports of a results directory: one row per run, as CSV, JSON lines or Parquet.

Columns, in a fixed order: the run id and status; every run-spec key (``spec.<key>``; a
component as its name, ``spec.<key>`` and one column per parameter, ``spec.<key>.<param>``;
lists as JSON text); the headline metrics; achieved density, updates and MACs; wall time;
health and mask movement; provenance. Rows follow the run ids' order, so the same records give
the same file. Parquet needs ``pyarrow`` (``pip install pyarrow``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dstbench.contracts.spec import OMITTED_AT_DEFAULT
from dstbench.engine.spec import FIELDS
from dstbench.errors import DstbenchError
from dstbench.io import write_bytes_atomic, write_text_atomic
from dstbench.leaderboard.data import Entry

FORMATS = ("csv", "jsonl", "parquet")

#: (column, path into the record) of the result columns.
_RESULT_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("test_accuracy", ("metrics", "test_accuracy")),
    ("best_val_test_accuracy", ("metrics", "best_val_test_accuracy")),
    ("best_val_accuracy", ("metrics", "best_val_accuracy")),
    ("best_val_epoch", ("metrics", "best_val_epoch")),
    ("test_loss", ("metrics", "test_loss")),
    ("final_train_loss", ("metrics", "final_train_loss")),
    ("density_achieved", ("density", "achieved")),
    ("updates", ("topology", "updates")),
    ("pruned", ("topology", "pruned")),
    ("grown", ("topology", "grown")),
    ("dense_macs_per_sample", ("metrics", "dense_macs_per_sample")),
    ("sparse_macs_per_sample", ("metrics", "sparse_macs_per_sample")),
    ("steps", ("timings", "steps")),
    ("train_seconds", ("timings", "train_seconds")),
    ("total_seconds", ("timings", "total_seconds")),
    ("at_chance", ("health", "at_chance")),
    ("mask_retained", ("mask_movement", "retained")),
    ("reason", ("reason",)),
    ("error_type", ("error", "type")),
    ("provenance.dstbench", ("provenance", "dstbench")),
    ("provenance.torch", ("provenance", "torch")),
    ("provenance.cuda", ("provenance", "cuda")),
    ("provenance.python", ("provenance", "python")),
    ("provenance.device_name", ("provenance", "device_name")),
    ("provenance.date", ("provenance", "date")),
    ("execution.executor", ("execution", "executor")),
    ("execution.host", ("execution", "host")),
)


def _get(record: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def flat_row(entry: Entry) -> dict[str, Any]:
    """One run as a flat mapping of column -> scalar (None where unknown)."""
    row: dict[str, Any] = {"run_id": entry.run_id, "status": entry.status}
    for key in FIELDS:
        # keys left out of a spec at their default (OMITTED_AT_DEFAULT) hold their default
        value = entry.spec.get(key, FIELDS[key].default if key in OMITTED_AT_DEFAULT else None)
        if isinstance(value, Mapping) and "name" in value:
            row[f"spec.{key}"] = value["name"]
            for param, v in sorted((value.get("params") or {}).items()):
                row[f"spec.{key}.{param}"] = _scalar(v)
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            row[f"spec.{key}"] = ",".join(str(v.get("name")) for v in value)
        else:
            row[f"spec.{key}"] = _scalar(value)
    for column, path in _RESULT_COLUMNS:
        row[column] = _scalar(_get(entry.record, path))
    return row


def flat_rows(entries: Sequence[Entry]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns (fixed order, parameter columns after their component) and the rows."""
    rows = [flat_row(e) for e in sorted(entries, key=lambda e: e.run_id)]
    columns: list[str] = []
    for row in rows:
        for column in row:
            if column not in columns:
                columns.append(column)
    order = {c: i for i, c in enumerate(_column_order(columns))}
    columns.sort(key=order.__getitem__)
    return columns, [{c: row.get(c) for c in columns} for row in rows]


def _column_order(columns: list[str]) -> list[str]:
    head = ["run_id", "status"]
    spec = [c for c in columns if c.startswith("spec.")]
    spec.sort(key=lambda c: (list(FIELDS).index(c.split(".")[1]), c))
    rest = [c for c, _ in _RESULT_COLUMNS if c in columns]
    return head + spec + rest


def to_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """CSV text with a header row (empty cells for None)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def to_jsonl(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """One JSON object per line, keys in column order."""
    return "".join(json.dumps({c: row[c] for c in columns}) + "\n" for row in rows)


def to_parquet(columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    """Parquet bytes (needs pyarrow)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        msg = "--format parquet needs pyarrow: pip install pyarrow (or use --format csv|jsonl)"
        raise DstbenchError(msg) from None
    table = pa.Table.from_pylist(rows, schema=_schema(pa, columns, rows))
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    return bytes(buffer.getvalue().to_pybytes())


def _schema(pa: Any, columns: list[str], rows: list[dict[str, Any]]) -> Any:
    """Column types from the values (mixed int/float columns become float, else string)."""
    fields = []
    for column in columns:
        kinds = {type(r[column]) for r in rows if r[column] is not None}
        if kinds <= {bool} and kinds:
            kind = pa.bool_()
        elif kinds <= {int} and kinds:
            kind = pa.int64()
        elif kinds <= {int, float} and kinds:
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(column, kind))
    if any(f.type == pa.string() for f in fields):
        for row in rows:
            for f in fields:
                if f.type == pa.string() and row[f.name] is not None:
                    row[f.name] = str(row[f.name])
    return pa.schema(fields)


def export(entries: Sequence[Entry], fmt: str, output: str | Path) -> Path:
    """Write ``entries`` as ``fmt`` (csv, jsonl or parquet) to ``output`` atomically."""
    if fmt not in FORMATS:
        raise DstbenchError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    columns, rows = flat_rows(entries)
    target = Path(output)
    if fmt == "csv":
        write_text_atomic(target, to_csv(columns, rows))
    elif fmt == "jsonl":
        write_text_atomic(target, to_jsonl(columns, rows))
    else:
        write_bytes_atomic(target, to_parquet(columns, rows))
    return target
