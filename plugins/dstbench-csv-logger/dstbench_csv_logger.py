"""Write every run's learning curve and topology updates as CSV files, through lifecycle hooks.

Where: ``$DSTBENCH_CSV_DIR`` if set, else the run's ``artifact_dir`` (suites give one), else
``./dstbench-csv``. What:

* ``<run_id>.epochs.csv``: one row per epoch (losses, accuracies, learning rate, ζ, density);
* ``<run_id>.updates.csv``: one row per layer per topology update (requested, pruned, grown
  and regrown counts, active weights and density after the update);
* ``runs.csv``: one row per finished run (status, components, density, seed, accuracies),
  shared by every run that writes into the directory.

Files are safe to read while runs write them, and several processes may share a directory:
a run's own files are (re)created atomically when it starts, and every later write appends
whole rows with a single ``write`` on a file opened with ``O_APPEND``; ``runs.csv`` gets its
header exactly once (created by an atomic link).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dstbench import EpochStats, RunContext, TopologyUpdate, hookimpl
from dstbench.contracts.spec import format_component
from dstbench.io import write_text_atomic

__version__ = "0.1.0"

#: Environment variable naming the output directory (wins over the run's artifact_dir).
DIR_ENV = "DSTBENCH_CSV_DIR"
DEFAULT_DIR = "dstbench-csv"
_SCRATCH = "dstbench_csv_logger"

EPOCH_COLUMNS = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
    "prune_fraction", "density", "seconds",
)  # fmt: skip
UPDATE_COLUMNS = (
    "step", "prune_fraction", "layer", "numel", "requested", "pruned", "grown", "regrown",
    "active", "density",
)  # fmt: skip
RUN_COLUMNS = (
    "run_id", "status", "model", "dataset", "method", "criterion", "growth", "density",
    "achieved_density", "seed", "epochs", "test_accuracy", "best_val_test_accuracy",
    "updates", "pruned", "grown", "seconds",
)  # fmt: skip


def output_dir(run: RunContext) -> Path:
    """``$DSTBENCH_CSV_DIR``, else the run's artifact_dir, else ``./dstbench-csv``."""
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV]).expanduser()
    if run.artifact_dir is not None:
        return Path(run.artifact_dir)
    return Path(DEFAULT_DIR)


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV text (``None`` as an empty field, floats at full precision)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def append(path: Path, text: str) -> None:
    """Append ``text`` with one ``write`` call on an ``O_APPEND`` descriptor, so that rows
    from concurrent writers never interleave.
    """
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # only on a full disk or a signal; finish the row
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def ensure_header(path: Path, columns: Sequence[str]) -> None:
    """Create ``path`` holding only its header, unless it exists: the header is written to a
    temporary file that is then hard-linked into place, which fails if another process won.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(csv_text([columns]))
        with contextlib.suppress(FileExistsError):  # another process created it first
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


@hookimpl
def dstbench_run_start(run: RunContext) -> None:
    """(Re)create this run's epoch and update files with their headers."""
    directory = output_dir(run)
    paths = {
        "epochs": directory / f"{run.run_id}.epochs.csv",
        "updates": directory / f"{run.run_id}.updates.csv",
        "runs": directory / "runs.csv",
    }
    write_text_atomic(paths["epochs"], csv_text([EPOCH_COLUMNS]))
    if run.masker is not None:
        write_text_atomic(paths["updates"], csv_text([UPDATE_COLUMNS]))
    numel = {layer.name: layer.numel for layer in run.masker.layers} if run.masker else {}
    run.scratch[_SCRATCH] = {"paths": paths, "numel": numel}


@hookimpl
def dstbench_epoch_end(run: RunContext, epoch: EpochStats) -> None:
    """Append the epoch's row."""
    state = run.scratch[_SCRATCH]
    values = epoch.as_dict()
    append(state["paths"]["epochs"], csv_text([[values[c] for c in EPOCH_COLUMNS]]))


@hookimpl
def dstbench_topology_update(run: RunContext, update: TopologyUpdate) -> None:
    """Append one row per layer the update touched (counts only: no tensor is read)."""
    state = run.scratch[_SCRATCH]
    rows = [
        (update.step, update.prune_fraction, layer.name, state["numel"][layer.name],
         layer.n_requested, layer.n_pruned, layer.n_grown, layer.n_regrown, layer.active,
         layer.active / state["numel"][layer.name])
        for layer in update.layers
    ]  # fmt: skip
    if rows:
        append(state["paths"]["updates"], csv_text(rows))


@hookimpl
def dstbench_run_end(run: RunContext, record: dict[str, Any]) -> None:
    """Append the run's summary row to ``runs.csv``."""
    path = run.scratch[_SCRATCH]["paths"]["runs"]
    spec, metrics, topology = record["spec"], record["metrics"], record["topology"]
    row = [
        record["run_id"],
        record["status"],
        format_component(spec["model"]),
        format_component(spec["dataset"]),
        spec["method"],
        format_component(spec["criterion"]),
        format_component(spec["growth"]),
        spec["density"],
        record["density"].get("achieved"),
        spec["seed"],
        spec["epochs"],
        metrics.get("test_accuracy"),
        metrics.get("best_val_test_accuracy"),
        topology["updates"],
        topology["pruned"],
        topology["grown"],
        record["timings"].get("total_seconds"),
    ]
    ensure_header(path, RUN_COLUMNS)
    append(path, csv_text([row]))
