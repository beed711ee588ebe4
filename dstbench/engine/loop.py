"""The training loop of one run: iterations, topology updates, epochs, evaluation.

Per iteration (the hot path): forward, loss, backward (dense gradients), the topology update
when one is due (every ``update_period`` iterations counted from the start), the optimizer
step with the masks fused into it, and nothing else: losses and accuracies accumulate on the
device and are read once per epoch, so the loop never waits on the device.

The default order is the same for every criterion: prune and grow on the current weights and
the current batch's gradient, then the optimizer step (newly grown weights thus get their first
update in the same iteration). ``update_order = "paper"`` reproduces the paper's code, where
magnitude, SET and random update the masks *after* the optimizer step.

:class:`RunState` is one run's DST state (masks, components, step counter, log); the batched
engine keeps one per run of its group and calls the same methods on each run's slice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn

from dstbench.contracts.run import EpochStats, RunContext
from dstbench.contracts.spec import RunSpec
from dstbench.engine import resume
from dstbench.engine.data import Batches, TensorBatches
from dstbench.engine.interrupt import RunInterrupted, stop_requested
from dstbench.engine.optim import MaskedSGD
from dstbench.engine.record import RunLog
from dstbench.engine.setup import DSTComponents, Setup, lr_milestones
from dstbench.errors import DstbenchError
from dstbench.plugins import LoadedPlugins
from dstbench.sparse.masker import Masker, MomentumLookup, update_violations
from dstbench.sparse.movement import snapshot
from dstbench.sparse.overlap import overlap, pruned_sets

#: ``progress(info)`` after every epoch: ``{"epoch", "epochs", "train_loss", "val_accuracy"}``.
Progress = Callable[[dict[str, Any]], None]


#: With the default checkpoint period, seconds of training between checkpoints.
CHECKPOINT_SECONDS = 300.0


def _data_generator(batches: Batches) -> torch.Generator | None:
    """The generator that decides a run's data order (and augmentation)."""
    if isinstance(batches, TensorBatches):
        return batches.generator
    generator = getattr(batches.loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


class RunStopped(Exception):
    """Training ended early with a final status (``diverged`` or ``invalid``)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Best:
    """The best-validation epoch and a copy of the model's state at that epoch."""

    accuracy: float = -math.inf
    epoch: int | None = None
    state: dict[str, torch.Tensor] | None = None

    def consider(self, epoch: int, accuracy: float, model: nn.Module) -> None:
        """Keep ``model``'s state if ``accuracy`` beats the best so far."""
        if accuracy > self.accuracy:
            self.accuracy, self.epoch = accuracy, epoch
            self.state = snapshot_state(model, self.state)


@dataclass
class Accumulator:
    """Epoch totals kept on the device, so that no iteration waits for a host read."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0

    @classmethod
    def on(cls, device: torch.device) -> Accumulator:
        """Zeroed totals on ``device``."""
        return cls(torch.zeros((), device=device), torch.zeros((), dtype=torch.long, device=device))

    def reset(self) -> None:
        """Zero the totals in place (no allocation)."""
        self.loss.zero_()
        self.correct.zero_()
        self.seen = 0

    def means(self) -> tuple[float, float]:
        """Mean loss and accuracy (one host read each)."""
        seen = max(self.seen, 1)
        return float(self.loss) / seen, int(self.correct) / seen


def snapshot_state(
    model: nn.Module, into: dict[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Copy the model's state into reused buffers (allocated on first use)."""
    state = model.state_dict()
    if into is None:
        return {k: v.detach().clone() for k, v in state.items()}
    for key, value in state.items():
        into[key].copy_(value)
    return into


def loss_of(
    out: torch.Tensor, y: torch.Tensor, binary: bool, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy (binary on one logit for two-class tasks with one output)."""
    if binary:
        return nn.functional.binary_cross_entropy_with_logits(
            out.squeeze(1), y.to(out.dtype), reduction=reduction
        )
    return nn.functional.cross_entropy(out, y, reduction=reduction)


def correct_of(out: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    """Number of correct predictions (a device tensor)."""
    predicted = (out.squeeze(1) > 0).long() if binary else out.argmax(1)
    return (predicted == y).sum()


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    batches: Batches,
    binary: bool,
    device: torch.device,
    timings: dict[str, Any],
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``batches`` (adds to ``timings["eval_seconds"]``)."""
    started = time.perf_counter()
    model.eval()
    totals = Accumulator.on(device)
    for xb, yb in batches:
        out = model(xb)
        totals.loss += loss_of(out, yb, binary, reduction="sum")
        totals.correct += correct_of(out, yb, binary)
        totals.seen += yb.shape[0]
    model.train()
    timings["eval_seconds"] += time.perf_counter() - started
    return totals.means()


class RunState:
    """One run's DST state: its masks, components, step counter and log."""

    def __init__(self, spec: RunSpec, plugins: LoadedPlugins, masker: Masker | None) -> None:
        self.spec = spec
        self.plugins = plugins
        self.dst = DSTComponents.of(spec)
        self.log = RunLog()
        self.step = 0
        self.total_steps = 0
        #: ζ of the latest topology update.
        self.prune_fraction: float | None = None
        self.masker: Masker | None = None
        self.set_masker(masker)

    def set_masker(self, masker: Masker | None) -> None:
        """Give the run its masks (the batched engine builds them after the state), keeping
        a copy of the initial ones for the record's mask movement."""
        self.masker = masker
        if masker is not None:
            self.log.initial_masks = snapshot(masker.topology())

    def due(self) -> float | None:
        """ζ when a topology update is due at the current step, else None."""
        if self.dst is None or self.step % (self.spec.update_period or 1):
            return None
        zeta = self.dst.schedule.fn(
            self.step, self.total_steps, self.spec.prune_fraction, **self.dst.schedule_params
        )
        return float(zeta) if zeta > 0 else None

    def topology_update(self, run: RunContext, momentum: MomentumLookup, fraction: float) -> None:
        """Prune and grow every sparse layer at ζ = ``fraction`` (and measure the compared
        criteria's overlap on the same state first)."""
        assert self.masker is not None and self.dst is not None
        started = time.perf_counter()
        dst = self.dst
        if dst.compared:
            sets = pruned_sets(
                self.masker,
                dst.compared,
                prune_fraction=fraction,
                step=self.step,
                seed=self.spec.seed,
                momentum=momentum,
            )
            self.log.overlaps.append(
                {"step": self.step, "prune_fraction": fraction, **overlap(sets)}
            )
        update = self.masker.update(
            step=self.step,
            prune_fraction=fraction,
            criterion=dst.criterion,
            criterion_params=dst.criterion_params,
            growth=dst.growth,
            growth_params=dst.growth_params,
            momentum=momentum,
            reset_momentum=bool(self.spec.reset_momentum),
        )
        self.prune_fraction = fraction
        summary = update.summary()
        summary["layers"] = {u.name: [u.n_pruned, u.n_grown] for u in update.layers}
        self.log.updates.append(summary)
        if dst.growth.exact:
            problems = update_violations(update)
            if problems:
                raise RunStopped("invalid", problems[0])
        self.plugins.hook.dstbench_topology_update(run=run, update=update)
        self.log.timings["update_seconds"] += time.perf_counter() - started

    def check_no_empty_layer(self) -> None:
        """A sparse layer with no active weight cuts the network: the run measures nothing."""
        if self.masker is None:
            return
        for layer in self.masker.layers:
            if layer.target == 0:
                assert self.spec.distribution is not None
                msg = (
                    f"layer {layer.name!r} has 0 active weights of {layer.numel} (density "
                    f"{self.spec.density:g}, distribution {self.spec.distribution.name}): "
                    "the network is cut"
                )
                raise RunStopped("invalid", msg)

    def check_invariants(self) -> None:
        """Exact counts, zero inactive weights (raises :class:`RunStopped` ``invalid``)."""
        assert self.masker is not None
        exact = self.dst is None or self.dst.growth.exact
        problems = self.masker.violations(exact_growth=exact)
        if problems:
            raise RunStopped("invalid", f"step {self.step}: {problems[0]}")


class SingleRun:
    """Trains one run: the loop of the single engine."""

    def __init__(
        self,
        state: RunState,
        setup: Setup,
        optimizer: MaskedSGD,
        run: RunContext,
        device: torch.device,
        progress: Progress | None = None,
        checkpoint: Path | None = None,
        checkpoint_every: int | None = None,
    ) -> None:
        self.state = state
        self.setup = setup
        self.optimizer = optimizer
        self.run = run
        self.device = device
        self.progress = progress
        self.best = Best()
        #: Where the run keeps its checkpoint (None: no checkpoints).
        self.checkpoint = checkpoint
        #: Epochs between checkpoints: 0 never, None by time (:data:`CHECKPOINT_SECONDS`).
        self.checkpoint_every = checkpoint_every
        #: When the last checkpoint was written (monotonic clock).
        self.last_checkpoint = time.monotonic()
        #: The data generator's state at the start of the current epoch.
        self.epoch_start: torch.Tensor | None = None
        self.data_generator = _data_generator(setup.train)
        self.scheduler: torch.optim.lr_scheduler.MultiStepLR | None = None
        self.resumes: list[dict[str, int]] = []

    def evaluate(self, batches: Batches) -> tuple[float, float]:
        """Mean loss and accuracy of the model on ``batches``."""
        return evaluate_model(
            self.setup.model, batches, self.setup.binary, self.device, self.state.log.timings
        )

    def _update_iteration(self, fraction: float, loss: torch.Tensor) -> None:
        """An iteration with a topology update: prune/grow and step in the configured order."""
        state, optimizer = self.state, self.optimizer
        value = loss.item()  # one host read per update, not per iteration
        if not math.isfinite(value):
            # NaN weights would make every criterion's scores NaN: stop here.
            raise RunStopped("diverged", f"training loss became {value} at step {state.step}")
        assert state.dst is not None
        if state.dst.update_after_step:
            optimizer.step()
            state.topology_update(self.run, optimizer.momentum_buffer, fraction)
        else:
            state.topology_update(self.run, optimizer.momentum_buffer, fraction)
            optimizer.step()
        state.check_invariants()

    def train_epoch(self, totals: Accumulator, epoch: int = 1, skip: int = 0) -> None:
        """One pass over the training batches (the first ``skip`` are drawn, not trained: a
        run resumed mid-epoch replays its data order up to where it stopped)."""
        model, binary, optimizer, state = (
            self.setup.model,
            self.setup.binary,
            self.optimizer,
            self.state,
        )
        if self.data_generator is not None:
            self.epoch_start = self.data_generator.get_state()
        for index, (xb, yb) in enumerate(self.setup.train):
            if index < skip:
                continue
            if stop_requested():  # a signal: checkpoint at this iteration and stop
                self.stop(epoch - 1, index, totals)
            optimizer.zero_grad(set_to_none=False)
            out = model(xb)
            loss = loss_of(out, yb, binary)
            loss.backward()
            state.step += 1
            fraction = state.due()
            if fraction is None:
                optimizer.step()
            else:
                self._update_iteration(fraction, loss)
            totals.loss.add_(loss.detach(), alpha=yb.shape[0])
            totals.correct.add_(correct_of(out.detach(), yb, binary))
            totals.seen += yb.shape[0]

    def train(self) -> None:
        """Every epoch (from the checkpoint, if there is one); the log gets the status
        (``ok``, or the stop's status and reason).

        :raises RunInterrupted: when the process was asked to stop (after checkpointing).
        """
        state, spec, setup = self.state, self.state.spec, self.setup
        self.scheduler = scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, lr_milestones(spec), gamma=spec.lr_gamma
        )
        state.total_steps = spec.epochs * len(setup.train)
        totals = Accumulator.on(self.device)
        resumed = resume.resume(self, totals)
        first, skip = (resumed.epoch + 1, resumed.batches_done) if resumed else (1, 0)
        earlier = state.log.timings.get("train_seconds", 0.0) + state.log.timings["eval_seconds"]
        train_started = time.perf_counter() - earlier
        try:
            state.check_no_empty_layer()
            for epoch in range(first, spec.epochs + 1):
                epoch_started = time.perf_counter()
                if not skip:
                    totals.reset()
                self.train_epoch(totals, epoch, skip)
                skip = 0
                train_loss, train_accuracy = totals.means()
                if not math.isfinite(train_loss):
                    msg = f"training loss became {train_loss} in epoch {epoch}"
                    raise RunStopped("diverged", msg)
                scheduler.step()
                self.end_epoch(epoch, train_loss, train_accuracy, epoch_started)
                if epoch < spec.epochs and self._checkpoint_due(epoch):
                    # the next epoch's data order starts from the generator's state now
                    next_epoch = self.data_generator.get_state() if self.data_generator else None
                    resume.save(self, epoch, 0, totals, next_epoch)
            if state.masker is not None:
                state.check_invariants()
            state.log.status = "ok"
        except RunStopped as stop:
            state.log.status, state.log.reason = stop.status, stop.reason
        timings = state.log.timings
        train_seconds = time.perf_counter() - train_started - timings["eval_seconds"]
        timings.update(
            train_seconds=train_seconds,
            steps=state.step,
            seconds_per_step=train_seconds / max(state.step, 1),
        )

    # --- checkpoints ---------------------------------------------------------------------

    def _checkpoint_due(self, epoch: int) -> bool:
        if self.checkpoint is None or self.checkpoint_every == 0:
            return False
        if self.checkpoint_every is None:
            return time.monotonic() - self.last_checkpoint >= CHECKPOINT_SECONDS
        return epoch % self.checkpoint_every == 0

    def stop(self, epochs_done: int, batches_done: int, totals: Accumulator) -> NoReturn:
        """Checkpoint where the run stands (if it can) and raise :class:`RunInterrupted`."""
        if self.checkpoint is not None:
            resume.save(self, epochs_done, batches_done, totals, self.epoch_start)
        path = str(self.checkpoint) if self.checkpoint is not None else None
        raise RunInterrupted(epochs_done, self.state.step, path)

    def end_epoch(
        self, epoch: int, train_loss: float, train_accuracy: float, started: float
    ) -> None:
        """Validation, the curve, the epoch hook and progress."""
        state, setup = self.state, self.setup
        val_loss = val_accuracy = None
        if setup.val is not None:
            val_loss, val_accuracy = self.evaluate(setup.val)
            if not math.isfinite(val_loss):
                raise RunStopped("diverged", f"validation loss became {val_loss} in epoch {epoch}")
            self.best.consider(epoch, val_accuracy, setup.model)
        stats = EpochStats(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            prune_fraction=state.prune_fraction,
            density=state.masker.density() if state.masker else 1.0,
            seconds=time.perf_counter() - started,
        )
        state.log.curve.append(stats.as_dict())
        state.plugins.hook.dstbench_epoch_end(run=self.run, epoch=stats)
        if self.progress:
            self.progress(
                {
                    "epoch": epoch,
                    "epochs": state.spec.epochs,
                    "train_loss": train_loss,
                    "val_accuracy": val_accuracy,
                }
            )

    def overlap_at_init(self) -> None:
        """The paper's Fig. 6a: one pruning step by every compared criterion on the untrained
        weights and the first training batch's dense gradient; nothing is trained or changed.
        Full layers (density 1) are pruned too: no growth follows."""
        state, setup = self.state, self.setup
        assert state.masker is not None and state.dst is not None
        if len(state.dst.compared) < 2:
            msg = "jaccard_at_init: needs at least two compare_criteria"
            raise DstbenchError(msg)
        model = setup.model
        xb, yb = next(iter(setup.train))
        model.zero_grad(set_to_none=False)
        loss_of(model(xb), yb, setup.binary).backward()
        fraction = float(state.spec.prune_fraction or 0.0)
        sets = pruned_sets(
            state.masker,
            state.dst.compared,
            prune_fraction=fraction,
            step=0,
            seed=state.spec.seed,
            include_full=True,
        )
        state.log.overlaps.append({"step": 0, "prune_fraction": fraction, **overlap(sets)})
        model.zero_grad(set_to_none=False)
        state.log.status = "ok"


def final_test_metrics(
    log: RunLog,
    setup: Setup,
    best: Best,
    evaluate: Callable[[Batches], tuple[float, float]],
) -> None:
    """After training (``ok`` runs only): the test set, touched here only, with the final model
    and then with the best-validation state. A non-finite test loss makes the run diverged."""
    if log.status != "ok":
        return
    model, metrics = setup.model, log.metrics
    metrics["test_loss"], metrics["test_accuracy"] = evaluate(setup.test)
    if not math.isfinite(metrics["test_loss"]):
        log.status = "diverged"
        log.reason = f"test loss is {metrics['test_loss']}"
        metrics["test_accuracy"] = None
    if best.state is not None:
        final_state = snapshot_state(model, None)
        model.load_state_dict(best.state)
        _, metrics["best_val_test_accuracy"] = evaluate(setup.test)
        model.load_state_dict(final_state)
        metrics["best_val_accuracy"] = best.accuracy
        metrics["best_val_epoch"] = best.epoch
