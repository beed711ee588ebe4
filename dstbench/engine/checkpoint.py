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

Files are written atomically and read with ``torch.load(weights_only=True)``: a checkpoint is
plain tensors, numbers and strings, never pickled objects. A checkpoint of another dstbench
version, another run or a damaged file is discarded with a warning in the record, and the run
starts over.
"""

from __future__ import annotations

import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dstbench._version import __version__

#: Bumped whenever what a checkpoint holds changes meaning.
FORMAT = 1


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


def write(path: Path, run_id: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` as ``path`` atomically (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "dstbench": __version__, "run_id": run_id, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(payload, None)`` for a usable checkpoint of ``run_id``; ``(None, why)`` for one that
    must be discarded; ``(None, None)`` when there is none."""
    if not path.exists():
        return None, None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
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
    return data, None


def remove(path: Path | None) -> None:
    """Delete a run's checkpoint (once its record is written)."""
    if path is not None:
        path.unlink(missing_ok=True)
