"""In-run checkpoints: everything that decides the rest of a run, so that a resumed run writes
the same record as an uninterrupted one (bit for bit on CPU; timings aside).

A checkpoint is taken at an epoch boundary (every ``checkpoint_every`` epochs, or by time) or
in the middle of an epoch, after the current iteration, when the process is asked to stop
(:mod:`dstbench.engine.interrupt`). It holds the weights, masks, optimizer and LR-scheduler
state, every random generator (torch's CPU and CUDA ones, numpy's, Python's, the run's data
and topology generators), the position in the data order, the epoch totals so far, the curve,
the topology-update log and the best-validation state.

The data position is kept as the data generator's state *at the start of the epoch* and the
number of batches already trained: resuming replays the epoch's order (and its augmentation
draws) and skips those batches, which is exact for in-memory splits and DataLoaders alike.

Files are written atomically (a temporary file renamed over the checkpoint; :func:`prepare`
and :func:`commit` let a batched group write all its runs' files before renaming any) and
read with ``torch.load(weights_only=True)``: a checkpoint is
plain tensors, numbers and strings, never pickled objects. Each file starts with a one-line
header holding the SHA-256 and the length of what follows, checked before anything is loaded
(``torch.load`` does not check its zip's CRCs: a flipped bit would resume unnoticed). A
checkpoint whose checksum fails, of another dstbench version, of another run (its run id, seed
or file name), or whose epoch and step cannot be the run's, is discarded with a one-line
warning (and a note in the record), and the run starts over.

A checkpoint that cannot be written (disk full, a file size limit) costs the run its resume
point, not its result: the caller warns once and training goes on (:class:`WriteFailed`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dstbench._version import __version__

#: Bumped whenever what a checkpoint holds changes meaning.
FORMAT = 2
#: The first bytes of a checkpoint file's header line.
MAGIC = b"dstbench-checkpoint"
#: The longest header line read.
_HEADER_BYTES = 200


class WriteFailed(Exception):
    """A checkpoint could not be written (the OS's or torch's reason in the message)."""


@dataclass
class Resumed:
    """Where a run picked up from its checkpoint."""

    #: Epochs finished before the checkpoint.
    epoch: int
    #: Batches of the next epoch already trained.
    batches_done: int
    step: int


def global_rng_state() -> dict[str, Any]:
    """The process-wide generators: torch (CPU and every CUDA device), numpy, Python."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`global_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write(path: Path, run_id: str, payload: dict[str, Any], *, seed: int | None = None) -> None:
    """Write ``payload`` as ``path`` atomically (a temporary file renamed over it), behind a
    header with its checksum.

    :param seed: the run's seed, checked on reading.
    :raises WriteFailed: when it cannot be serialized or written; no partial file is left.
    """
    commit(prepare(path, run_id, payload, seed=seed), path)


def prepare(path: Path, run_id: str, payload: dict[str, Any], *, seed: int | None = None) -> Path:
    """Write ``payload`` into a temporary file beside ``path`` (synced to disk) and return it;
    :func:`commit` renames it over ``path``. Two steps, so that a caller that writes several
    checkpoints that belong together (a batched group's) renames none until all are written.

    :raises WriteFailed: when it cannot be serialized or written; no temporary file is left.
    """
    data = {"format": FORMAT, "dstbench": __version__, "run_id": run_id, "seed": seed, **payload}
    buffer = io.BytesIO()
    try:
        torch.save(data, buffer)
    except Exception as exc:  # torch's own errors (RuntimeError: enforce fail ...)
        raise WriteFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    body = buffer.getbuffer()
    digest = hashlib.sha256(body).hexdigest()
    header = MAGIC + f" {FORMAT} sha256:{digest} {len(body)}\n".encode()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(header)
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(f"{path}: {exc.strerror or exc}") from exc
    return Path(tmp)


def commit(tmp: Path, path: Path) -> None:
    """Rename the temporary file that :func:`prepare` wrote over ``path`` (atomic).

    :raises WriteFailed: when it cannot be renamed; the temporary file is removed.
    """
    try:
        os.replace(tmp, path)
    except OSError as exc:
        raise WriteFailed(f"{path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _verified_body(path: Path) -> tuple[bytes | None, str | None]:
    """The checkpoint's body when its header's length and checksum hold, else why not."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None, "not a regular file"
    with os.fdopen(fd, "rb") as handle:
        header = handle.readline(_HEADER_BYTES)
        parts = header.rstrip(b"\n").split(b" ")
        if len(parts) != 4 or parts[0] != MAGIC or not header.endswith(b"\n"):
            return None, "no checksum header (not a checkpoint of this format)"
        try:
            size = int(parts[3])
        except ValueError:
            return None, "a damaged checksum header"
        body = handle.read(size + 1)
    if len(body) != size:
        return None, f"{len(body)} bytes where its header says {size} (truncated or extended)"
    if parts[2] != b"sha256:" + hashlib.sha256(body).hexdigest().encode():
        return None, "its checksum does not match its contents (the file is damaged)"
    return body, None


def _position_problem(data: dict[str, Any], epochs: int | None) -> str | None:
    """Why a checkpoint's epoch, batch and step cannot be a position of the run, or None."""
    values: dict[str, int] = {}
    for key in ("epoch", "batches_done", "step"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"its {key} is {value!r}"
        values[key] = value
    epoch, batches, step = values["epoch"], values["batches_done"], values["step"]
    if epochs is not None and (epoch > epochs or (epoch == epochs and batches)):
        return f"it is at epoch {epoch} (batch {batches}) of a {epochs}-epoch run"
    if step < epoch + (1 if batches else 0):
        return f"its step {step} is fewer than its {epoch} epochs and {batches} batches"
    return None


def read(
    path: Path, run_id: str, *, seed: int | None = None, epochs: int | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``(payload, None)`` for a usable checkpoint of ``run_id``; ``(None, why)`` for one that
    must be discarded; ``(None, None)`` when there is none.

    :param seed: the run's seed; a checkpoint of another seed is discarded.
    :param epochs: the run's epochs; a checkpoint past them is discarded.
    """
    if not path.exists():
        return None, None
    if path.stem != run_id:
        return None, f"its file name {path.name!r} is not run {run_id!r}'s"
    try:
        body, problem = _verified_body(path)
        if body is None:
            return None, problem
        data = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged, truncated, or not ours
        return None, f"unreadable ({type(exc).__name__}: {str(exc)[:200]})"
    if not isinstance(data, dict):
        return None, "not a checkpoint"
    if data.get("format") != FORMAT or data.get("dstbench") != __version__:
        return None, (
            f"written by dstbench {data.get('dstbench')!r} (format {data.get('format')!r}); "
            f"this is {__version__} (format {FORMAT})"
        )
    if data.get("run_id") != run_id:
        return None, f"it belongs to run {data.get('run_id')!r}"
    if seed is not None and data.get("seed") != seed:
        return None, f"it is of seed {data.get('seed')!r}, not the run's {seed}"
    problem = _position_problem(data, epochs)
    if problem is not None:
        return None, problem
    return data, None


def warn_discarded(path: Path, why: str) -> None:
    """The one-line warning for a checkpoint that is discarded."""
    sys.stderr.write(
        f"dstbench: warning: {path}: checkpoint discarded ({why}); the run starts over\n"
    )
    sys.stderr.flush()


def remove_temporaries(path: Path) -> int:
    """Remove the temporary files a killed writer of checkpoint ``path`` left; return how many."""
    removed = 0
    if path.parent.is_dir():
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed += 1
    return removed


def remove(path: Path | None) -> None:
    """Delete a run's checkpoint (once its record is written)."""
    if path is not None:
        path.unlink(missing_ok=True)
