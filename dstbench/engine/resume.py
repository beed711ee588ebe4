"""Saving and restoring a single-engine run's state (see :mod:`dstbench.engine.checkpoint`
for what a checkpoint holds and why it is exact)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import torch

from dstbench.engine import checkpoint as checkpoints

if TYPE_CHECKING:
    from dstbench.engine.loop import Accumulator, Best, RunState, SingleRun


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
    run.setup.model.load_state_dict(data["model"])
    run.optimizer.load_state_dict(data["optimizer"])
    restore_run(run.state, run.best, run.data_generator, data, run.device)
    checkpoints.set_global_rng_state(data["rng"])
    assert run.scheduler is not None
    run.scheduler.last_epoch = data["epoch"]
    run.scheduler._last_lr = [g["lr"] for g in run.optimizer.param_groups]
    totals.loss.copy_(data["totals"]["loss"])
    totals.correct.copy_(data["totals"]["correct"])
    totals.seen = int(data["totals"]["seen"])


def restore_run(
    state: RunState,
    best: Best,
    data_generator: torch.Generator | None,
    data: dict[str, Any],
    device: torch.device,
) -> None:
    """Put what a checkpoint holds of one run's DST state back (masks, its generators, step,
    log and best-validation state), after the caller has loaded the weights. The optimizer,
    epoch totals and process-wide generators are the caller's too (a batched group shares
    them between its runs)."""
    masker, log = state.masker, state.log
    if masker is not None:
        masker.restore_topology(data["masks"])
        masker.generator.set_state(data["topology_generator"])
    if data_generator is not None and data["data_generator"] is not None:
        data_generator.set_state(data["data_generator"])
    state.step = int(data["step"])
    state.prune_fraction = data["prune_fraction"]
    saved = data["log"]
    log.curve[:] = saved["curve"]
    log.updates[:] = saved["updates"]
    log.overlaps[:] = saved["overlaps"]
    log.timings.update(saved["timings"])
    if saved["initial_masks"]:
        log.initial_masks = {k: v.to(device) for k, v in saved["initial_masks"].items()}
    saved_best = data["best"]
    best.accuracy, best.epoch = float(saved_best["accuracy"]), saved_best["epoch"]
    if saved_best["state"] is not None:
        best.state = {k: v.to(device) for k, v in saved_best["state"].items()}
