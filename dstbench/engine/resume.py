"""Saving and restoring a single-engine run's state (see :mod:`dstbench.engine.checkpoint`
for what a checkpoint holds and why it is exact)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import torch

from dstbench.engine import checkpoint as checkpoints

if TYPE_CHECKING:
    from dstbench.engine.loop import Accumulator, SingleRun


class CheckpointMismatch(Exception):
    """A checkpoint that reads well but does not fit the run (another model, shapes...)."""


def save(
    run: SingleRun,
    epochs_done: int,
    batches_done: int,
    totals: Accumulator,
    data_state: torch.Tensor | None,
) -> None:
    """Write the checkpoint: ``epochs_done`` epochs and ``batches_done`` batches of the
    next one are trained; ``data_state`` is the data generator's state at the start of
    that next epoch."""
    assert run.checkpoint is not None
    state, log = run.state, run.state.log
    masker = state.masker
    payload = {
        "epoch": epochs_done,
        "batches_done": batches_done,
        "step": state.step,
        "prune_fraction": state.prune_fraction,
        "model": run.setup.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "masks": masker.topology() if masker else {},
        "topology_generator": masker.generator.get_state() if masker else None,
        "data_generator": data_state,
        "rng": checkpoints.global_rng_state(),
        "totals": {"loss": totals.loss, "correct": totals.correct, "seen": totals.seen},
        "log": {
            "curve": log.curve,
            "updates": log.updates,
            "overlaps": log.overlaps,
            "timings": log.timings,
            "initial_masks": log.initial_masks or {},
        },
        "best": {
            "accuracy": run.best.accuracy,
            "epoch": run.best.epoch,
            "state": run.best.state,
        },
        "resumes": run.resumes,
    }
    try:
        checkpoints.write(run.checkpoint, state.spec.run_id, payload, seed=state.spec.seed)
    except checkpoints.WriteFailed as exc:
        # The run loses its resume point, not its result: warn once, go on training.
        if not log.extra.get("checkpoint_write_failed"):
            sys.stderr.write(
                f"dstbench: warning: run {state.spec.run_id}: cannot write its checkpoint "
                f"({exc}); training goes on without one\n"
            )
            sys.stderr.flush()
            log.extra["checkpoint_write_failed"] = str(exc)
    run.last_checkpoint = time.monotonic()


def resume(run: SingleRun, totals: Accumulator) -> checkpoints.Resumed | None:
    """Restore the run from its checkpoint, if it has a usable one (a bad one is discarded
    with a warning in the record)."""
    if run.checkpoint is None:
        return None
    state, log = run.state, run.state.log
    data, problem = checkpoints.read(
        run.checkpoint, state.spec.run_id, seed=state.spec.seed, epochs=state.spec.epochs
    )
    finished = data.get("finished") if data is not None else None
    if finished is not None:
        # A run that ended (diverged, invalid, failed) inside a batched group, kept only until
        # its group's records are written: nothing of it can be trained on.
        data, problem = None, f"it holds the end ({finished.get('status')}) of a batched run"
    if problem is not None:
        checkpoints.warn_discarded(run.checkpoint, problem)
        log.extra["checkpoint"] = {"discarded": problem}
        checkpoints.remove(run.checkpoint)
    if data is None:
        return None
    try:
        _restore(run, data, totals)
    except Exception as exc:  # incompatible contents: start over, never a wrong result
        raise CheckpointMismatch(f"{type(exc).__name__}: {exc}") from exc
    resumed = checkpoints.Resumed(data["epoch"], data["batches_done"], data["step"])
    run.resumes = [*data["resumes"], dict(resumed.__dict__)]
    log.extra["checkpoint"] = {"resumed": run.resumes}
    return resumed


def _restore(run: SingleRun, data: dict[str, Any], totals: Accumulator) -> None:
    state, log, masker = run.state, run.state.log, run.state.masker
    run.setup.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    if masker is not None:
        masker.restore_topology(data["masks"])
        masker.generator.set_state(data["topology_generator"])
    if run.data_generator is not None and data["data_generator"] is not None:
        run.data_generator.set_state(data["data_generator"])
    checkpoints.set_global_rng_state(data["rng"])
    assert run.scheduler is not None
    run.scheduler.last_epoch = data["epoch"]
    run.scheduler._last_lr = [g["lr"] for g in run.optimizer.param_groups]
    totals.loss.copy_(data["totals"]["loss"])
    totals.correct.copy_(data["totals"]["correct"])
    totals.seen = int(data["totals"]["seen"])
    state.step = int(data["step"])
    state.prune_fraction = data["prune_fraction"]
    saved = data["log"]
    log.curve[:] = saved["curve"]
    log.updates[:] = saved["updates"]
    log.overlaps[:] = saved["overlaps"]
    log.timings.update(saved["timings"])
    if saved["initial_masks"]:
        log.initial_masks = {k: v.to(run.device) for k, v in saved["initial_masks"].items()}
    best = data["best"]
    run.best.accuracy, run.best.epoch = float(best["accuracy"]), best["epoch"]
    if best["state"] is not None:
        run.best.state = {k: v.to(run.device) for k, v in best["state"].items()}
