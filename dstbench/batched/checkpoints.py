"""In-run checkpoints of a batched group: one file per run, in the single engine's format.

At a checkpoint point (every ``checkpoint_every`` epochs, by time, or after the current
iteration when the process is asked to stop) every run of the group gets its own
``<run id>.pt``, written as :mod:`dstbench.engine.resume` writes a single-engine run's: its
slice of the stacked weights, masks and momentum buffers (as a ``MaskedSGD`` state dict, with
the group's learning rate), its topology and data generators, the data position (the data
generator's state at the start of the epoch and the batches done), its slice of the epoch
totals, its curve, update log and best-validation state, and the process-wide generators
(shared by the group, so equal in every file). A single-engine run can therefore resume from a
batched run's checkpoint, and a group of one from a single-engine run's.

A run that already ended in the group (diverged, invalid, failed) is written too, at the same
position, with a ``finished`` block holding its status: its record is written only with the
group's, and the group resumes only with all of its runs (see :func:`read_group`). The single
engine discards such a file.

The files of one checkpoint point are written to temporary files first and renamed only once
all are written (:func:`dstbench.engine.checkpoint.prepare`): a kill while writing leaves the
previous point's files, all at one position, and a file that cannot be written leaves the
whole group at its previous point.

Why a group resumes only as a whole: a stacked product rounds differently with another number
of runs (measured on CPU: a run's record changes in its last bits with the group it trains in),
so a run resumed in a smaller stack, or one started over beside resumed ones, would not write
the record of the uninterrupted group. When the runs' checkpoints do not all stand at one
position (one is missing, damaged or discarded, or a write was cut short), none is used: each
is discarded with the one-line warning and the group starts over, which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dstbench.contracts.spec import RunSpec
from dstbench.engine import checkpoint as checkpoints
from dstbench.engine.setup import build_optimizer

#: A checkpoint's position: (epochs done, batches of the next epoch done, step).
Position = tuple[int, int, int]


def position(data: dict[str, Any]) -> Position:
    """Where a checkpoint stands."""
    return int(data["epoch"]), int(data["batches_done"]), int(data["step"])


def optimizer_layout(spec: RunSpec, model: nn.Module) -> tuple[list[str], list[dict[str, Any]]]:
    """The parameter names in the order of the single engine's optimizer, and its
    ``param_groups`` as its ``state_dict`` gives them (what a checkpoint's ``optimizer`` holds
    besides the momentum buffers)."""
    optimizer = build_optimizer(spec, model, None)
    names = {id(param): name for name, param in model.named_parameters()}
    order = [names[id(param)] for group in optimizer.param_groups for param in group["params"]]
    return order, optimizer.state_dict()["param_groups"]


def read_group(
    specs: Sequence[RunSpec], paths: Sequence[Path | None]
) -> tuple[list[dict[str, Any]] | None, list[str | None]]:
    """The checkpoints the group resumes from (one per run, in order), or None: it starts over.

    A checkpoint that cannot be used is discarded (removed, with the one-line warning); so
    are all of them when they do not stand at one position. Returns also, per run, why its
    checkpoint was discarded (None: it was not), for the record.
    """
    notes: list[str | None] = [None] * len(specs)
    if all(path is None for path in paths):
        return None, notes
    found: list[dict[str, Any] | None] = []
    for i, (spec, path) in enumerate(zip(specs, paths, strict=True)):
        data = None
        if path is not None:
            data, problem = checkpoints.read(path, spec.run_id, seed=spec.seed, epochs=spec.epochs)
            if problem is not None:
                discard(path, problem)
                notes[i] = problem
        found.append(data)
    if all(data is None for data in found):
        return None, notes
    at = {position(data) for data in found if data is not None}
    if len(at) == 1 and all(data is not None for data in found):
        usable = [data for data in found if data is not None]
        if any(data.get("finished") is None for data in usable):
            return usable, notes
    where = sorted(at)[-1]
    missing = sum(data is None for data in found)
    why = (
        f"the group's {len(specs)} runs are not all at epoch {where[0]}, batch {where[1]} "
        f"({missing} without a usable checkpoint, {len(at)} positions); a group resumes only "
        "as a whole"
    )
    if len(at) == 1 and not missing:
        why = "every run of its group had ended; nothing to resume"
    for i, (path, data) in enumerate(zip(paths, found, strict=True)):
        if data is not None and path is not None:
            discard(path, why)
            notes[i] = why
    return None, notes


def discard(path: Path, why: str) -> None:
    """Warn in one line that ``path`` is not used, and remove it (it would never fit again)."""
    checkpoints.warn_discarded(path, why)
    checkpoints.remove(path)


def clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Own copies of a run's slices: saving a view would write the whole stacked tensor."""
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}
