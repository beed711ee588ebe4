"""Higgs, the version of the tabular benchmark of Grinsztajn et al. (2022) used by the paper.

The paper's code downloads OpenML task 361069 (about 940,000 rows, 24 numeric features,
binary target). dstbench reads a local copy instead, so runs need no network and no extra
packages; see ``docs/datasets.md`` for the three-line export. Files searched, in order::

    the dataset parameter ``file`` (absolute, or relative to the data root)
    <root>/higgs/higgs.csv, higgs.csv.gz, higgs.parquet

A CSV has a header row and numeric values; the label column is named by ``target``
(default ``"target"``) and must hold two distinct values (mapped to 0 and 1 in sorted
order). Parquet files need pyarrow.

Splits as in the paper's code: stratified 70% / 15% / 15% (train / validation / test) with
scikit-learn's ``train_test_split(random_state=42)``, the same for every seed. The 15% test
part is the test set. Validation ``"paper"`` uses the paper's 15% validation part; ``"split"``
trains on the other 85% and lets the engine carve its validation split from it. Features are
not scaled (as in the paper) unless ``standardize`` is true (training-part statistics).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import torch

from dstbench.contracts.data import DatasetContext, DatasetParts, TensorSplit
from dstbench.datasets.files import bad_file, missing_data
from dstbench.errors import DataError

#: What a column name in a header looks like (anything else is not repeated in messages).
_COLUMN_NAME = re.compile(r"^[A-Za-z0-9_.\- ]{1,64}$")
FOLDER = "higgs"
CANDIDATES = ("higgs.csv", "higgs.csv.gz", "higgs.parquet")
#: The paper's split seed and fractions.
SPLIT_SEED = 42
HOW = (
    "export OpenML task 361069 to higgs.csv there (see docs/datasets.md), "
    "or point the dataset parameter 'file' at a CSV or parquet copy"
)


def find_higgs_file(ctx: DatasetContext, file: str) -> Path:
    """The Higgs file to read: ``file`` if given, else the first candidate in ``root/higgs``."""
    if file:
        path = Path(file).expanduser()
        path = path if path.is_absolute() else ctx.root / path
        if not path.is_file():
            raise missing_data("higgs", path, HOW)
        return path
    folder = ctx.root / FOLDER
    for name in CANDIDATES:
        if (folder / name).is_file():
            return folder / name
    searched = f"{folder}/{{{','.join(CANDIDATES)}}}"
    raise missing_data("higgs", searched, HOW)


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as handle:
            header = [name.strip().strip('"') for name in handle.readline().strip().split(",")]
            values = np.loadtxt(handle, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        # Never quote the file: numpy's and gzip's messages include the offending text, and a
        # record (then a leaderboard) would carry it.
        reason = "a value after the header row is not a number"
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        elif isinstance(exc, (EOFError, UnicodeDecodeError)) or type(exc).__name__ == "BadGzipFile":
            reason = "not a text (or gzip-compressed text) file"
        problem = f"expected a numeric CSV with a header row ({reason})"
        raise bad_file("higgs", path, problem) from None
    if values.shape[1] != len(header):
        problem = f"header has {len(header)} columns but rows have {values.shape[1]}"
        raise bad_file("higgs", path, problem)
    return header, values


def _read_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        msg = f"dataset 'higgs': reading {path} needs pyarrow (pip install pyarrow), or use a CSV"
        raise DataError(msg) from exc
    try:
        table = pq.read_table(path)
        header = list(table.column_names)
        values = np.column_stack(
            [np.asarray(table.column(n).to_numpy(), dtype=np.float64) for n in header]
        )
    except (OSError, ValueError, TypeError) as exc:
        problem = f"expected a parquet file of numeric columns ({type(exc).__name__})"
        raise bad_file("higgs", path, problem) from None
    return header, values


def read_higgs(path: Path, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(features float32 (N, F), labels int64 (N,), feature names)`` from ``path``."""
    header, values = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    if target not in header:
        problem = f"no label column {target!r}"
        if all(_COLUMN_NAME.match(name) for name in header) and len(header) <= 200:
            problem += f"; columns are {', '.join(header)}"
        else:  # not a header of column names: do not copy the file's first line anywhere
            problem += f"; its first line is not a CSV header ({len(header)} field(s))"
        raise bad_file("higgs", path, f"{problem} (set the dataset parameter 'target')")
    column = header.index(target)
    classes, labels = np.unique(values[:, column], return_inverse=True)
    if classes.size != 2:
        problem = f"label column {target!r} must hold 2 distinct values, found {classes.size}"
        raise bad_file("higgs", path, problem)
    features = np.delete(values, column, axis=1).astype(np.float32)
    if not np.isfinite(features).all():
        raise bad_file("higgs", path, "features contain missing or non-finite values")
    names = [name for i, name in enumerate(header) if i != column]
    return features, labels.astype(np.int64), names


def paper_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices ``(train 70%, val 15%, test 15%)``, stratified, as the paper's code.

    The paper splits off 30% (``test_size=0.3``) and halves it (``test_size=0.5``), both
    with ``random_state=42`` and stratification; the first half is its test set.
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(labels.shape[0])
    train, rest = train_test_split(rows, test_size=0.3, random_state=SPLIT_SEED, stratify=labels)
    test, val = train_test_split(
        rest, test_size=0.5, random_state=SPLIT_SEED, stratify=labels[rest]
    )
    return train, val, test


def load_higgs(
    ctx: DatasetContext, file: str = "", target: str = "target", standardize: bool = False
) -> DatasetParts:
    """Higgs (OpenML task 361069): binary classification of 24 numeric features."""
    path = find_higgs_file(ctx, file)
    features, labels, names = read_higgs(path, target)
    train_rows, val_rows, test_rows = paper_split(labels)
    notes = {
        "file": str(path),
        "split": "stratified 70/15/15, sklearn train_test_split random_state=42 (paper)",
        "features": len(names),
    }
    if ctx.validation != "paper":
        train_rows = np.concatenate([train_rows, val_rows])
    x = torch.from_numpy(features)
    y = torch.from_numpy(labels)
    if standardize:
        part = x[torch.from_numpy(train_rows)]
        x = (x - part.mean(0)) / part.std(0).clamp_min(1e-12)
        notes["standardize"] = "training-part mean/std"

    def take(rows: np.ndarray) -> TensorSplit:
        index = torch.from_numpy(rows)
        return TensorSplit(x[index], y[index])

    val = None
    if ctx.validation == "paper":
        val = take(val_rows)
        notes["validation"] = "paper: its stratified 15% validation part"
    return DatasetParts(
        train=take(train_rows),
        test=take(test_rows),
        val=val,
        input_shape=(features.shape[1],),
        num_classes=2,
        notes=notes,
    )
