"""The batched engine: K compatible runs trained together, one forward/backward per step.

Each run keeps the single engine's per-run state (:class:`~dstbench.engine.loop.RunState`): its
resolved components, its Masker, decides when its topology updates are due, performs them with
the unchanged criterion and growth plugins, checks its invariants, and writes its record. What
the runs share is the arithmetic of a step: their parameters are stacked (see
:mod:`dstbench.batched.stack`), each run's batch is drawn from its own seeded data order, and one
stacked forward/backward and one fused masked SGD step train them all. A run that diverges,
breaks an invariant or fails is recorded as such and dropped from the group; the others go on.

Per step, in each run's own order: forward and backward on every run's batch; then, for the
runs whose update is due, the topology update before the step (or after it, for the paper's
order); the stacked optimizer step; and the invariant checks of the runs that updated.

A group checkpoints like the single engine (every ``checkpoint_every`` epochs, by time, and
after the current iteration when the process is asked to stop, then raising
:class:`~dstbench.engine.interrupt.RunInterrupted`): each run gets its own
``<run id>.pt`` in the single engine's format, its slice of the stacked state, and a run
that ended earlier its end (see :mod:`dstbench.batched.checkpoints`). A group whose runs all
have a checkpoint at one position restacks them and resumes there, writing the records of
the uninterrupted group bit for bit on CPU (timings aside); otherwise it starts over, since
a stack rounds differently with other runs in it. The worker removes each run's checkpoint
once its record is written.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from dstbench.batched import checkpoints as group_checkpoints
from dstbench.batched.forward import StackedForward, Unbatchable, stacked_forward
from dstbench.batched.grouping import group_key, make_groups
from dstbench.batched.stack import RunSlot, StackedRuns, StackedSGD
from dstbench.contracts.data import DatasetParts, TensorSplit
from dstbench.contracts.execution import ExecutionOptions, Job, RunRequest
from dstbench.contracts.record import RunRecord
from dstbench.contracts.run import EpochStats, RunContext
from dstbench.contracts.spec import RunSpec
from dstbench.engine import checkpoint as checkpoints
from dstbench.engine.allocator import keep_freed_memory
from dstbench.engine.data import TensorBatches, make_batches
from dstbench.engine.interrupt import RunInterrupted, stop_requested
from dstbench.engine.loop import (
    CHECKPOINT_SECONDS,
    Best,
    RunState,
    RunStopped,
    evaluate_model,
    final_test_metrics,
)
from dstbench.engine.provenance import provenance
from dstbench.engine.record import assemble_record, error_block
from dstbench.engine.resume import CheckpointMismatch, restore_run
from dstbench.engine.setup import (
    Setup,
    build_masker,
    build_model,
    check_output,
    info_of,
    load_parts,
    lr_milestones,
    resolve_device,
    sample_inputs,
)
from dstbench.engine.single import end_run, epoch_progress, train_run
from dstbench.engine.spec import build_spec
from dstbench.errors import DstbenchError
from dstbench.plugins import LoadedPlugins, get_plugins
from dstbench.sparse.seeds import derive_seed

ENGINE_NAME = "batched"

#: ``progress(index, info)``: run ``index`` of the group finished an epoch (``info`` as the
#: single engine's progress callback gets it).
GroupProgress = Callable[[int, dict[str, Any]], None]


@dataclass
class _Member:
    """One run of the group: the single engine's per-run state, and what its record needs."""

    index: int
    state: RunState
    started: float
    artifact_dir: Path | None = None
    model: nn.Module | None = None
    run: RunContext | None = None
    #: The context observers saw start (None until ``dstbench_run_start`` was called).
    observed: RunContext | None = None
    best: Best = field(default_factory=Best)
    #: The run's own training batches (its seeded data order and augmentation stream).
    batches: TensorBatches | None = None
    #: Due topology updates happen after the optimizer step (the paper's order).
    after_step: bool = False
    #: ΔT, or 0 for a run without topology updates.
    period: int = 0
    #: Training ended (status in the log); the run leaves the stack at the next compaction.
    stopped: bool = False
    #: Where the run keeps its in-run checkpoint (None: none).
    checkpoint: Path | None = None
    #: The data generator's state at the start of the current epoch (for a mid-epoch stop).
    epoch_start: torch.Tensor | None = None
    #: Where the run resumed from its checkpoints so far (the record's ``checkpoint.resumed``).
    resumes: list[dict[str, int]] = field(default_factory=list)


def _stacked_loss(out: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    """Per-run losses (K,) summed over the batch (the caller divides for the mean)."""
    k, b = y.shape
    if binary:
        per_sample = nn.functional.binary_cross_entropy_with_logits(
            out.squeeze(-1), y.to(out.dtype), reduction="none"
        )
    else:
        per_sample = nn.functional.cross_entropy(
            out.reshape(k * b, -1), y.reshape(-1), reduction="none"
        ).view(k, b)
    return per_sample.sum(1)


def _stacked_correct(out: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    predicted = (out.squeeze(-1) > 0).long() if binary else out.argmax(-1)
    return (predicted == y).sum(1)


#: Memory the stacked tensors of one group may take (parameters, gradients, momentum, masks
#: and scratch: about 8 copies of the parameters). A larger group trains in consecutive parts.
MEMORY_BUDGET = 2 * 1024**3
#: Bytes per parameter and run that the stack holds.
_BYTES_PER_PARAMETER = 8 * 4


@dataclass
class _Data:
    """A group's dataset, loaded once: its parts, splits on the device and batches."""

    parts: DatasetParts
    train: TensorSplit
    val: TensorSplit | None


def load_data(spec: RunSpec, device: torch.device, data_root: str | None, download: bool) -> _Data:
    """The dataset, loaded once for a group, its training and validation splits on the device.

    :raises Unbatchable: when the splits are not in-memory tensors.
    """
    parts, train, val = load_parts(spec, data_root, download)
    if not isinstance(train, TensorSplit) or not (val is None or isinstance(val, TensorSplit)):
        raise Unbatchable(f"dataset {spec.dataset.name!r} is not an in-memory tensor split")
    return _Data(parts, train.to(device), None if val is None else val.to(device))


def part_size(spec: RunSpec, parts: DatasetParts) -> int:
    """How many runs of ``spec``'s model fit :data:`MEMORY_BUDGET` (at least one)."""
    with torch.device("meta"):
        model = info_of(spec.model).fn(parts.input_shape, parts.num_classes, **spec.model.params)
    count = sum(p.numel() for p in model.parameters())
    return max(1, MEMORY_BUDGET // max(1, count * _BYTES_PER_PARAMETER))


class GroupTrainer:
    """Trains a group of compatible specs together (see the module docstring)."""

    def __init__(
        self,
        specs: Sequence[RunSpec],
        *,
        plugins: LoadedPlugins,
        device: torch.device,
        progress: GroupProgress | None,
        artifact_dirs: Sequence[Path | None] | None = None,
        checkpoints: Sequence[Path | None] | None = None,
        checkpoint_every: int | None = 0,
        resume: bool = True,
        discarded: Sequence[str | None] | None = None,
    ) -> None:
        """
        :param checkpoints: each run's checkpoint file (None: none).
        :param checkpoint_every: epochs between checkpoints (0 never; None: by time).
        :param resume: resume from the runs' checkpoints if they allow it
            (:func:`~dstbench.batched.checkpoints.read_group`); False: start over.
        :param discarded: per run, why its checkpoint was discarded (for the record).
        """
        self.plugins = plugins
        self.device = device
        self.progress = progress
        now = time.perf_counter()
        dirs = list(artifact_dirs or [None] * len(specs))
        paths = list(checkpoints or [None] * len(specs))
        self.members = [
            _Member(
                index=i,
                state=RunState(spec, plugins, None),
                started=now,
                artifact_dir=d,
                checkpoint=path,
            )
            for i, (spec, d, path) in enumerate(zip(specs, dirs, paths, strict=True))
        ]
        for member, why in zip(self.members, discarded or [], strict=False):
            if why is not None:
                member.state.log.extra["checkpoint"] = {"discarded": why}
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        #: The checkpoint of every run, all at one position, that the group resumes from.
        self.saved: list[dict[str, Any]] | None = None
        #: Where training resumes: (epochs done, batches of the next epoch done), or None.
        self.resume_at: tuple[int, int] | None = None
        #: The epoch totals the resumed epoch had reached (None: a fresh epoch).
        self.resume_totals: _Totals | None = None
        #: Training time of the earlier attempts (seconds).
        self.earlier_seconds = 0.0
        self.train_started = now
        self.last_checkpoint = time.monotonic()
        self.write_failed = False
        #: The single engine's optimizer layout: parameter names in order, ``param_groups``.
        self.layout: tuple[list[str], list[dict[str, Any]]] | None = None
        self.spec = specs[0]
        self.group_size = len(specs)
        self.active: list[_Member] = []
        self.runs: StackedRuns | None = None
        self.optimizer: StackedSGD | None = None
        self.forward: StackedForward | None = None
        self.step = 0
        self.binary = False
        self.parts: DatasetParts | None = None
        self.macs: dict[str, int] | None = None
        self.val: Any = None
        self.test: Any = None
        self.milestones: set[int] = set()

    # --- setup ---------------------------------------------------------------------------

    def build(self, data: _Data) -> None:
        """Every run's model and masks exactly as the single engine makes them, then stacked.

        :raises Unbatchable: when the model cannot be stacked (before training).
        """
        spec = self.spec
        parts, train, val = data.parts, data.train, data.val
        batch = spec.batch_size
        self.parts = parts
        self.test = make_batches(parts.test, batch, device=self.device, shuffle=False)
        self.val = make_batches(val, batch, device=self.device, shuffle=False) if val else None
        sample = sample_inputs(train, 2).to(self.device)
        slots = []
        for member in self.members:
            state = member.state
            model = build_model(state.spec, parts, self.device)
            if self.macs is None:
                self.forward = stacked_forward(model)
                self.binary, self.macs = check_output(model, sample, state.spec, parts)
                # Only a group that stacks reads its checkpoints: the single engine that
                # trains the others resumes each run from its own.
                self._read_checkpoints()
            generator = torch.Generator().manual_seed(derive_seed(state.spec.seed, "data"))
            member.batches = TensorBatches(
                train, batch, shuffle=True, generator=generator, transform=parts.train_transform
            )
            member.model = model
            state.set_masker(build_masker(state.spec, model))
            if state.dst is not None:
                member.after_step = state.dst.update_after_step
                member.period = state.spec.update_period or 0
            if self.layout is None:
                self.layout = group_checkpoints.optimizer_layout(state.spec, model)
            if self.saved is not None:
                self._restore(member, self.saved[member.index])
            if not member.stopped:  # a run that ended before the checkpoint stays out
                slots.append(RunSlot(model, state.masker))
        self.runs = StackedRuns(slots)
        self.optimizer = StackedSGD(
            self.runs,
            lr=spec.lr,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            nesterov=spec.nesterov and spec.momentum > 0,
        )
        self.active = [member for member in self.members if not member.stopped]
        if self.saved is not None:
            self._restore_group(self.saved)

    # --- checkpoints ---------------------------------------------------------------------

    def _read_checkpoints(self) -> None:
        """The checkpoints to resume from, if every run has one at one position."""
        paths = [member.checkpoint for member in self.members]
        if not self.resume or all(path is None for path in paths):
            return
        specs = [member.state.spec for member in self.members]
        self.saved, discarded = group_checkpoints.read_group(specs, paths)
        for member, why in zip(self.members, discarded, strict=True):
            if why is not None:
                member.state.log.extra["checkpoint"] = {"discarded": why}

    def _restore(self, member: _Member, data: dict[str, Any]) -> None:
        """Put one run's checkpoint into its own (not yet stacked) model, masks, generators
        and log, as :func:`dstbench.engine.resume.resume` does for the single engine.

        :raises CheckpointMismatch: when the checkpoint does not fit the run.
        """
        state, log = member.state, member.state.log
        assert member.model is not None and member.batches is not None
        try:
            member.model.load_state_dict(data["model"])
            restore_run(state, member.best, member.batches.generator, data, self.device)
            finished = data.get("finished")
            if finished is not None:  # it ended before the checkpoint: only its record is left
                log.status, log.reason, log.error = (
                    finished["status"],
                    finished["reason"],
                    finished["error"],
                )
                state.step = int(finished["step"])
                member.stopped = True
        except Exception as exc:  # incompatible contents: start over, never a wrong result
            msg = f"run {state.spec.run_id}: {type(exc).__name__}: {exc}"
            raise CheckpointMismatch(msg) from exc
        epoch, batches, step = group_checkpoints.position(data)
        resumed = {"epoch": epoch, "batches_done": batches, "step": step}
        member.resumes = [*data["resumes"], resumed]
        log.extra["checkpoint"] = {"resumed": member.resumes}

    def _restore_group(self, saved: Sequence[dict[str, Any]]) -> None:
        """What the runs share: the stacked momentum, the step, the learning rate, the epoch
        totals so far and the process-wide generators (equal in every run's file).

        :raises CheckpointMismatch: when the runs' optimizer states do not stack.
        """
        assert self.optimizer is not None and self.layout is not None
        order = self.layout[0]
        active = [saved[member.index] for member in self.active]
        first = active[0]
        try:
            buffers: list[dict[str, torch.Tensor]] = []
            for data in active:
                state = data["optimizer"]["state"]
                buffers.append({order[i]: s["momentum_buffer"] for i, s in state.items()})
            names = set(buffers[0])
            if any(set(b) != names for b in buffers):
                raise ValueError("the runs' momentum buffers are not of the same parameters")
            self.optimizer.buffers = {
                name: torch.stack([b[name] for b in buffers]).to(self.device)
                for name in order
                if name in names
            }
            self.optimizer.lr = float(first["optimizer"]["param_groups"][0]["lr"])
            totals = _Totals.on(len(self.active), self.device)
            totals.loss.copy_(torch.stack([d["totals"]["loss"] for d in active]))
            totals.correct.copy_(torch.stack([d["totals"]["correct"] for d in active]))
            totals.seen = int(first["totals"]["seen"])
        except Exception as exc:
            raise CheckpointMismatch(f"{type(exc).__name__}: {exc}") from exc
        epoch, batches, self.step = group_checkpoints.position(first)
        self.resume_at = (epoch, batches)
        self.resume_totals = totals if batches else None
        timings = first["log"]["timings"]
        self.earlier_seconds = timings.get("train_seconds", 0.0) + timings["eval_seconds"]
        checkpoints.set_global_rng_state(first["rng"])

    def _checkpoint_due(self, epoch: int) -> bool:
        """Whether the group checkpoints at the end of ``epoch`` (as the single engine)."""
        if self.checkpoint_every == 0 or all(m.checkpoint is None for m in self.members):
            return False
        if self.checkpoint_every is None:
            return time.monotonic() - self.last_checkpoint >= CHECKPOINT_SECONDS
        return epoch % self.checkpoint_every == 0

    def _save(self, epochs_done: int, batches_done: int, totals: _Totals | None) -> None:
        """Write every run's checkpoint at this position: ``epochs_done`` epochs and
        ``batches_done`` batches of the next one trained; each active run's ``epoch_start``
        is its data generator's state at the start of that next epoch.

        All files are written before any is renamed into place: a kill or a failed write
        leaves the previous position's files (see :mod:`dstbench.batched.checkpoints`).
        """
        assert self.optimizer is not None and self.layout is not None
        order, groups = self.layout
        rng = checkpoints.global_rng_state()
        elapsed = time.perf_counter() - self.train_started
        position = {"epoch": epochs_done, "batches_done": batches_done, "step": self.step}
        stack = {id(member): k for k, member in enumerate(self.active)}
        written: list[tuple[Path, Path]] = []
        try:
            for member in self.members:
                if member.checkpoint is None or member.model is None:
                    continue
                k = stack.get(id(member))
                payload = self._payload(member, k, totals, order, groups, elapsed)
                payload.update(position, rng=rng)
                spec = member.state.spec
                tmp = checkpoints.prepare(member.checkpoint, spec.run_id, payload, seed=spec.seed)
                written.append((tmp, member.checkpoint))
            for tmp, path in written:
                checkpoints.commit(tmp, path)
        except checkpoints.WriteFailed as exc:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
            self._write_failed(exc)
        self.last_checkpoint = time.monotonic()

    def _payload(
        self,
        member: _Member,
        k: int | None,
        totals: _Totals | None,
        order: list[str],
        groups: list[dict[str, Any]],
        elapsed: float,
    ) -> dict[str, Any]:
        """One run's checkpoint (position and process generators aside): slice ``k`` of the
        stacked state for a run in the stack, its own state for one that ended (k None)."""
        assert self.optimizer is not None and member.model is not None
        state, log, masker = member.state, member.state.log, member.state.masker
        buffers = self.optimizer.buffers if k is not None else {}
        momentum = {
            i: {"momentum_buffer": buffers[name][k].clone()}
            for i, name in enumerate(order)
            if name in buffers
        }
        if k is not None and totals is not None:
            loss, correct = totals.loss[k].clone(), totals.correct[k].clone()
        else:
            loss = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.long, device=self.device)
        generator = member.batches.generator if member.batches else None
        if k is not None:
            data_state = member.epoch_start
        else:
            data_state = generator.get_state() if generator is not None else None
        timings = dict(log.timings)
        # What the training so far took, so that a resumed run's time includes it.
        timings["train_seconds"] = elapsed - timings["eval_seconds"]
        payload: dict[str, Any] = {
            "prune_fraction": state.prune_fraction,
            "model": group_checkpoints.clone(member.model.state_dict()),
            "optimizer": {
                "state": momentum,
                "param_groups": [{**group, "lr": self.optimizer.lr} for group in groups],
            },
            "masks": group_checkpoints.clone(masker.topology()) if masker else {},
            "topology_generator": masker.generator.get_state() if masker else None,
            "data_generator": data_state,
            "totals": {"loss": loss, "correct": correct, "seen": totals.seen if totals else 0},
            "log": {
                "curve": log.curve,
                "updates": log.updates,
                "overlaps": log.overlaps,
                "timings": timings,
                "initial_masks": log.initial_masks or {},
            },
            "best": {
                "accuracy": member.best.accuracy,
                "epoch": member.best.epoch,
                "state": member.best.state,
            },
            "resumes": member.resumes,
        }
        if k is None:  # it ended earlier in the group: its record is all that is left to write
            payload["finished"] = {
                "status": log.status,
                "reason": log.reason,
                "error": log.error,
                "step": state.step,
            }
        return payload

    def _write_failed(self, exc: checkpoints.WriteFailed) -> None:
        """The group keeps its previous checkpoints and trains on; said once per group."""
        if not self.write_failed:
            sys.stderr.write(
                f"dstbench: warning: a batched group of {len(self.members)} runs: cannot write "
                f"its checkpoints ({exc}); training goes on from the previous ones\n"
            )
            sys.stderr.flush()
            self.write_failed = True
        for member in self.members:
            member.state.log.extra.setdefault("checkpoint_write_failed", str(exc))

    def _interrupt(self, epochs_done: int, batches_done: int, totals: _Totals) -> None:
        """Checkpoint where the group stands (if it can) and raise :class:`RunInterrupted`."""
        if any(member.checkpoint is not None for member in self.members):
            self._save(epochs_done, batches_done, totals)
        first = self.members[0].checkpoint
        raise RunInterrupted(epochs_done, self.step, str(first) if first is not None else None)

    # --- failure handling ----------------------------------------------------------------

    def _stop(self, member: _Member, status: str, reason: str | None, error: Any = None) -> None:
        """End ``member``'s training with ``status``; it leaves the stack at the next compaction."""
        log = member.state.log
        log.status = status
        if reason is not None:
            log.reason = reason
        if error is not None:
            log.error = error
        member.stopped = True
        member.state.step = self.step

    def _guarded(self, member: _Member, action: Callable[[], None]) -> None:
        """Run one run's own work; a stop or an error ends that run only."""
        try:
            action()
        except RunStopped as stop:
            self._stop(member, stop.status, stop.reason)
        except Exception as exc:  # recorded as the single engine records it
            self._stop(member, "failed", None, error_block(exc))

    def _compact(self) -> torch.Tensor | None:
        """Take the stopped runs out of the stack; return the kept positions (None: all kept).

        A stopped run keeps private copies of its parameters and masks for its record.
        """
        keep = [i for i, m in enumerate(self.active) if not m.stopped]
        if len(keep) == len(self.active):
            return None
        assert self.runs is not None and self.optimizer is not None
        self.runs.keep(keep, [self.optimizer.buffers])
        self.active = [self.active[i] for i in keep]
        return torch.tensor(keep, dtype=torch.long)

    # --- the loop ------------------------------------------------------------------------

    def _topology(self, k: int, member: _Member, fraction: float) -> None:
        assert self.runs is not None and member.run is not None and self.optimizer is not None
        self.runs.expose_grads(k)
        # The stacked optimizer answers momentum_buffer(param) for run k's own parameters.
        member.state.topology_update(member.run, self.optimizer.momentum_buffer, fraction)

    def _due(self) -> list[tuple[int, _Member, float]]:
        """(position, run, ζ) of the runs whose topology update is due at this step."""
        due = []
        for k, member in enumerate(self.active):
            if member.period and self.step % member.period == 0:
                member.state.step = self.step
                fraction = member.state.due()
                if fraction is not None:
                    due.append((k, member, fraction))
        return due

    def _iteration(self, xb: torch.Tensor, yb: torch.Tensor, totals: _Totals) -> None:
        """Forward, backward, due topology updates and the step, for every active run."""
        assert self.runs is not None and self.optimizer is not None and self.forward is not None
        self.runs.zero_grad()
        out = self.forward(self.runs.params, xb)
        losses = _stacked_loss(out, yb, self.binary).div_(yb.shape[1])
        losses.sum().backward()
        self.step += 1
        due = self._due()
        if due:
            values = losses.detach().tolist()  # one host read per iteration with an update
            for k, member, _ in due:
                value = values[k]
                if not math.isfinite(value):
                    # NaN weights would make every criterion's scores NaN: stop here.
                    reason = f"training loss became {value} at step {self.step}"
                    self._stop(member, "diverged", reason)
            for k, member, fraction in due:
                if not member.after_step and not member.stopped:
                    self._guarded(member, functools.partial(self._topology, k, member, fraction))
                    # The step below zeroes inactive weights (it multiplies by the mask), so a
                    # stray one left by the update must be caught before it, as the single
                    # engine's step (which leaves it) lets its check after the step catch it.
                    if not member.stopped:
                        self._guarded(member, member.state.check_invariants)
        self.optimizer.step()
        for k, member, fraction in due:
            if member.after_step and not member.stopped:
                self._guarded(member, functools.partial(self._topology, k, member, fraction))
        for _, member, _ in due:
            if not member.stopped:
                self._guarded(member, member.state.check_invariants)
        totals.loss.add_(losses.detach(), alpha=yb.shape[1])
        totals.correct.add_(_stacked_correct(out.detach(), yb, self.binary))

    def _train_epoch(self, totals: _Totals, epoch: int = 1, skip: int = 0) -> None:
        """One epoch for every active run, each on its own seeded data order (the first
        ``skip`` batches are drawn, not trained: a group resumed mid-epoch replays its runs'
        data orders and augmentation draws up to where it stopped)."""
        first = self.active[0].batches
        assert first is not None
        split, batch, transform = first.split, first.batch_size, first.transform
        for member in self.active:  # where a mid-epoch checkpoint replays the epoch from
            generator = member.batches.generator if member.batches else None
            member.epoch_start = generator.get_state() if generator is not None else None
        orders = torch.stack([m.batches.epoch_order() for m in self.active])  # type: ignore[union-attr]
        x_shape = split.x.shape[1:]
        count = len(self.active) * min(batch, len(split))
        x_buf = torch.empty((count, *x_shape), dtype=split.x.dtype, device=split.x.device)
        y_buf = torch.empty((count,), dtype=split.y.dtype, device=split.y.device)
        for position, start in enumerate(range(0, len(split), batch)):
            if position < skip and transform is None:
                continue  # nothing of a skipped batch draws from the generators
            if position >= skip and stop_requested():  # checkpoint here and stop
                self._interrupt(epoch - 1, position, totals)
            index = orders[:, start : start + batch]
            k, size = index.shape
            xb, yb = x_buf[: k * size], y_buf[: k * size]
            torch.index_select(split.x, 0, index.reshape(-1), out=xb)
            torch.index_select(split.y, 0, index.reshape(-1), out=yb)
            xb, yb = xb.view(k, size, *x_shape), yb.view(k, size)
            if transform is not None:  # each run's augmentation from its own generator
                for j, member in enumerate(self.active):
                    generator = member.batches.generator if member.batches else None
                    assert generator is not None  # training batches are shuffled
                    xb[j].copy_(transform(xb[j], generator))
            if position < skip:
                continue  # trained before the checkpoint: only its augmentation draws are replayed
            self._iteration(xb, yb, totals)
            totals.seen += size
            kept = self._compact()
            if kept is not None:
                orders = orders[kept.to(orders.device)]
                totals.keep(kept)
            if not self.active:
                return

    @torch.no_grad()
    def _evaluate(self, batches: Any) -> tuple[list[float], list[float]]:
        """Per-run mean loss and accuracy of the stacked models on a shared split."""
        assert self.runs is not None and self.forward is not None
        started = time.perf_counter()
        k = len(self.active)
        totals = _Totals.on(k, self.device)
        for xb, yb in batches:
            x = xb.unsqueeze(0).expand(k, *xb.shape)
            y = yb.unsqueeze(0).expand(k, *yb.shape)
            out = self.forward(self.runs.params, x)
            totals.loss.add_(_stacked_loss(out, y, self.binary))
            totals.correct.add_(_stacked_correct(out, y, self.binary))
            totals.seen += yb.shape[0]
        seconds = (time.perf_counter() - started) / max(k, 1)
        for member in self.active:
            member.state.log.timings["eval_seconds"] += seconds
        return totals.means()

    def _epoch_end(self, epoch: int, totals: _Totals, seconds: float) -> None:
        """Divergence check, LR schedule, validation, curve and hooks of every active run."""
        assert self.optimizer is not None
        losses, accuracies = totals.means()
        for member, loss in zip(self.active, losses, strict=True):
            if not math.isfinite(loss):
                self._stop(member, "diverged", f"training loss became {loss} in epoch {epoch}")
        kept = self._compact()
        if kept is not None:
            losses = [losses[i] for i in kept.tolist()]
            accuracies = [accuracies[i] for i in kept.tolist()]
        if epoch in self.milestones:  # torch's MultiStepLR: lr *= gamma at each milestone
            self.optimizer.lr = self.optimizer.lr * self.spec.lr_gamma
        if not self.active:
            return
        val = self._evaluate(self.val) if self.val is not None else None
        for j, member in enumerate(self.active):
            state = member.state
            assert member.model is not None and member.run is not None
            val_loss = val[0][j] if val else None
            val_accuracy = val[1][j] if val else None
            if val_loss is not None and not math.isfinite(val_loss):
                reason = f"validation loss became {val_loss} in epoch {epoch}"
                self._stop(member, "diverged", reason)
                continue
            if val_accuracy is not None:
                member.best.consider(epoch, val_accuracy, member.model)
            stats = EpochStats(
                epoch=epoch,
                train_loss=losses[j],
                train_accuracy=accuracies[j],
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=float(self.optimizer.lr),
                prune_fraction=state.prune_fraction,
                density=state.masker.density() if state.masker else 1.0,
                seconds=seconds,
            )
            state.log.curve.append(stats.as_dict())
            run = member.run
            hook = self.plugins.hook.dstbench_epoch_end
            self._guarded(member, functools.partial(hook, run=run, epoch=stats))
            if self.progress:
                info = {
                    "epoch": epoch,
                    "epochs": self.spec.epochs,
                    "train_loss": losses[j],
                    "val_accuracy": val_accuracy,
                }
                self.progress(member.index, info)
        self._compact()

    def train(self) -> None:
        """Train every run of the group; each log gets its status (records are assembled by
        :meth:`finish`)."""
        spec = self.spec
        self.milestones = set(lr_milestones(spec))
        first = self.active[0].batches
        assert first is not None
        total_steps = spec.epochs * len(first)
        for member in self.members:  # a run that ended before a checkpoint too, for its record
            state = member.state
            assert member.model is not None
            state.total_steps = total_steps
            member.run = RunContext(
                spec=state.spec,
                run_id=state.spec.run_id,
                model=member.model,
                device=self.device,
                masker=state.masker,
                artifact_dir=member.artifact_dir,
            )
            member.observed = member.run
            start = self.plugins.hook.dstbench_run_start
            ended = member.stopped
            self._guarded(member, functools.partial(start, run=member.run))
            if not ended:
                self._guarded(member, state.check_no_empty_layer)
        kept = self._compact()
        if kept is not None and self.resume_totals is not None:
            self.resume_totals.keep(kept)
        train_started = self.train_started = time.perf_counter() - self.earlier_seconds
        done, skip = self.resume_at or (0, 0)
        for epoch in range(done + 1, spec.epochs + 1):
            if not self.active:
                break
            epoch_started = time.perf_counter()
            totals = self.resume_totals if skip and self.resume_totals else None
            totals = totals or _Totals.on(len(self.active), self.device)
            self._train_epoch(totals, epoch, skip)
            skip = 0
            if not self.active:
                break
            self._epoch_end(epoch, totals, time.perf_counter() - epoch_started)
            if self.active and epoch < spec.epochs and self._checkpoint_due(epoch):
                for member in self.active:  # the next epoch's order starts from here
                    generator = member.batches.generator if member.batches else None
                    member.epoch_start = generator.get_state() if generator is not None else None
                self._save(epoch, 0, None)  # a resume starts the next epoch's totals afresh
        for member in self.active:
            if member.state.masker is not None:
                self._guarded(member, member.state.check_invariants)
            if not member.stopped:
                member.state.log.status = "ok"
        self._compact()
        train_seconds = time.perf_counter() - train_started
        for member in self.members:
            timings = member.state.log.timings
            timings.update(
                train_seconds=train_seconds - timings["eval_seconds"],
                steps=member.state.step if member.stopped else self.step,
                group_size=self.group_size,
            )
            timings["seconds_per_step"] = timings["train_seconds"] / max(timings["steps"], 1)

    # --- the records ---------------------------------------------------------------------

    def fail_active(self, exc: BaseException) -> None:
        """A failure of the shared step: every run still training is recorded as failed."""
        for member in self.active:
            self._stop(member, "failed", None, error_block(exc))
        self.active = []

    def fail_all(self, exc: BaseException) -> None:
        """A failure of the group's setup: every run is recorded as failed."""
        for member in self.members:
            member.state.log.fail(exc)
            member.model = None
        self.active = []

    def finish(self, group_started: float) -> list[RunRecord]:
        """Complete every run's record as the single engine does, in the group's order."""
        records = []
        for member in self.members:
            state, log = member.state, member.state.log
            if member.model is not None and self.parts is not None:
                try:
                    self._test(member)
                except Exception as exc:
                    log.fail(exc)
            log.timings["total_seconds"] = time.perf_counter() - group_started
            built = member.model is not None and self.parts is not None
            record = assemble_record(
                state.spec,
                log,
                masker=state.masker,
                macs=self.macs if built else None,
                num_classes=self.parts.num_classes if built and self.parts else None,
                data_notes=self.parts.notes if built and self.parts else None,
                provenance=provenance(state.spec, self.plugins, self.device, ENGINE_NAME),
            )
            records.append(end_run(self.plugins, member.observed, record))
        return records

    def _test(self, member: _Member) -> None:
        """The test metrics of one run, with its own (unstacked) model."""
        assert member.model is not None and self.parts is not None
        model, log = member.model, member.state.log
        setup = Setup(model, self.parts, self.test, self.val, self.test, self.binary, {})

        def evaluate(batches: Any) -> tuple[float, float]:
            return evaluate_model(model, batches, self.binary, self.device, log.timings)

        final_test_metrics(log, setup, member.best, evaluate)


@dataclass
class _Totals:
    """Per-run epoch totals kept on the device (read once per epoch)."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0

    @classmethod
    def on(cls, k: int, device: torch.device) -> _Totals:
        """Zeroed totals for ``k`` runs."""
        return cls(torch.zeros(k, device=device), torch.zeros(k, dtype=torch.long, device=device))

    def keep(self, index: torch.Tensor) -> None:
        """Follow the stack when runs leave it."""
        index = index.to(self.loss.device)
        self.loss = self.loss[index]
        self.correct = self.correct[index]

    def means(self) -> tuple[list[float], list[float]]:
        """Per-run mean loss and accuracy (one host read each)."""
        seen = max(self.seen, 1)
        return (
            [v / seen for v in self.loss.tolist()],
            [c / seen for c in self.correct.tolist()],
        )


def train_group(
    specs: Sequence[RunSpec],
    *,
    plugins: LoadedPlugins,
    device: torch.device,
    data_root: str | None = None,
    download: bool = False,
    artifact_dirs: Sequence[Path | None] | None = None,
    progress: GroupProgress | None = None,
    stream: TextIO | None = None,
    checkpoints: Sequence[Path | None] | None = None,
    checkpoint_every: int | None = 0,
) -> Iterator[RunRecord]:
    """Train compatible built specs together; yield their records in order (never raises for
    a failing run). See :func:`execute_group`.

    :param checkpoints: each run's checkpoint file (None: none); a group whose runs all have
        one at the same position resumes from them (see :mod:`dstbench.batched.checkpoints`).
    :param checkpoint_every: epochs between checkpoints (0 never; None: by time).
    :raises RunInterrupted: when the process is asked to stop (the group has checkpointed).
    """
    if not specs:
        return
    paths = list(checkpoints or [None] * len(specs))
    if any(spec.jaccard_at_init for spec in specs):
        yield from _split_at_init(
            specs,
            plugins,
            device,
            data_root,
            download,
            artifact_dirs,
            progress,
            stream,
            paths,
            checkpoint_every,
        )
        return
    if len({group_key(spec) for spec in specs}) > 1:
        raise DstbenchError(
            "batched engine: these runs cannot train together (they differ in model, dataset "
            "or training hyperparameters)"
        )
    dirs = list(artifact_dirs or [None] * len(specs))
    keep_freed_memory()  # a stacked step's tensors are large: reuse their pages
    fallback = _Fallback(
        specs, plugins, device, data_root, download, dirs, progress, stream, paths, checkpoint_every
    )
    try:
        data = load_data(specs[0], device, data_root, download)
        size = part_size(specs[0], data.parts)
    except Unbatchable as why:
        yield from fallback(why)
        return
    except Exception as exc:  # the data cannot be loaded: every run fails as it would alone
        group = GroupTrainer(specs, plugins=plugins, device=device, progress=None)
        group.fail_all(exc)
        yield from group.finish(time.perf_counter())
        return
    for first in range(0, len(specs), size):
        part = slice(first, first + size)

        def offset(index: int, info: dict[str, Any], first: int = first) -> None:
            assert progress is not None
            progress(first + index, info)

        chunk = _train_part(
            specs[part],
            data,
            plugins,
            device,
            dirs[part],
            offset if progress else None,
            paths[part],
            checkpoint_every,
        )
        if isinstance(chunk, Unbatchable):
            yield from fallback(chunk, start=first)
            return
        yield from chunk


def execute_group(
    specs: Sequence[Any],
    *,
    plugins: LoadedPlugins | None = None,
    device: str | torch.device | None = "cpu",
    data_root: str | None = None,
    download: bool = False,
    artifact_dirs: Sequence[Any] | None = None,
    progress: GroupProgress | None = None,
    stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """Train compatible runs together and return their records' JSON forms, in order (never
    raises for a failing run).

    Each record is what :func:`dstbench.engine.single.execute` writes for that spec (the same
    run id, status, curve and per-update counts; weights equal up to float reassociation),
    with ``timings.group_size`` added and ``train_seconds`` the group's training time.
    When the model or the data cannot be stacked, one line on ``stream`` (default stderr)
    says why and the runs are trained one after the other by the single engine.

    :param specs: run specs (raw, normalized or built) that :func:`group_key` puts in one group.
    :param artifact_dirs: one directory (or None) per spec, for observers.
    :param progress: ``progress(index, info)`` after every epoch of run ``index``.
    :raises SpecError: when a spec is invalid.
    :raises DstbenchError: when the specs are not compatible.
    """
    plugins = plugins or get_plugins()
    built = [build_spec(spec, plugins.registry) for spec in specs]
    records = train_group(
        built,
        plugins=plugins,
        device=resolve_device(device),
        data_root=data_root,
        download=download,
        artifact_dirs=artifact_dirs,
        progress=progress,
        stream=stream,
    )
    return [record.to_json() for record in records]


def _train_part(
    specs: Sequence[RunSpec],
    data: _Data,
    plugins: LoadedPlugins,
    device: torch.device,
    dirs: Sequence[Path | None],
    progress: GroupProgress | None,
    paths: Sequence[Path | None] = (),
    checkpoint_every: int | None = 0,
) -> list[RunRecord] | Unbatchable:
    started = time.perf_counter()
    paths = list(paths) or [None] * len(specs)

    def trainer(resume: bool = True, discarded: str | None = None) -> GroupTrainer:
        return GroupTrainer(
            specs,
            plugins=plugins,
            device=device,
            progress=progress,
            artifact_dirs=dirs,
            checkpoints=paths,
            checkpoint_every=checkpoint_every,
            resume=resume,
            discarded=[discarded] * len(specs),
        )

    group = trainer()
    try:
        try:
            group.build(data)
        except CheckpointMismatch as exc:  # start the group over, from scratch, without them
            why = f"does not fit the run ({exc})"
            for path in paths:
                if path is not None:
                    group_checkpoints.discard(path, why)
            group = trainer(resume=False, discarded=why)
            group.build(data)
    except Unbatchable as why:
        return why
    except Exception as exc:  # a setup failure fails every run of the group
        group.fail_all(exc)
        return group.finish(started)
    try:
        group.train()
    except Exception as exc:
        group.fail_active(exc)
    return group.finish(started)


def _split_at_init(
    specs: Sequence[RunSpec],
    plugins: LoadedPlugins,
    device: torch.device,
    data_root: str | None,
    download: bool,
    artifact_dirs: Sequence[Path | None] | None,
    progress: GroupProgress | None,
    stream: TextIO | None,
    paths: Sequence[Path | None],
    checkpoint_every: int | None,
) -> Iterator[RunRecord]:
    """Records of a group that holds ``jaccard_at_init`` runs, in order: those runs (one
    pruning step on untrained weights, nothing to batch) with the single engine, each
    consecutive stretch of the others batched."""
    dirs = list(artifact_dirs or [None] * len(specs))
    start = 0
    while start < len(specs):
        at_init = specs[start].jaccard_at_init
        end = start
        while end < len(specs) and specs[end].jaccard_at_init == at_init:
            end += 1

        def shifted(index: int, info: dict[str, Any], first: int = start) -> None:
            assert progress is not None
            progress(first + index, info)

        part = slice(start, end)
        offset = shifted if progress else None
        if at_init:
            why = Unbatchable("jaccard_at_init runs train nothing, so there is nothing to stack")
            yield from _Fallback(
                specs[part],
                plugins,
                device,
                data_root,
                download,
                dirs[part],
                offset,
                stream,
                paths[part],
                checkpoint_every,
            )(why)
        else:
            yield from train_group(
                specs[part],
                plugins=plugins,
                device=device,
                data_root=data_root,
                download=download,
                artifact_dirs=dirs[part],
                progress=offset,
                stream=stream,
                checkpoints=paths[part],
                checkpoint_every=checkpoint_every,
            )
        start = end


@dataclass
class _Fallback:
    """Train runs one after the other with the single engine, saying why in one line."""

    specs: Sequence[RunSpec]
    plugins: LoadedPlugins
    device: torch.device
    data_root: str | None
    download: bool
    dirs: Sequence[Path | None]
    progress: GroupProgress | None
    stream: TextIO | None
    #: Each run's checkpoint file (None: none): the single engine checkpoints and resumes.
    checkpoints: Sequence[Path | None] = ()
    checkpoint_every: int | None = 0

    def __call__(self, why: Exception, start: int = 0) -> Iterator[RunRecord]:
        """Records of the runs from ``start`` on."""
        (self.stream or sys.stderr).write(
            f"dstbench: batched engine: {why}; training its {len(self.specs) - start} run(s) "
            "with the single engine\n"
        )
        for i in range(start, len(self.specs)):
            progress = self.progress
            yield train_run(
                self.specs[i],
                plugins=self.plugins,
                device=self.device,
                data_root=self.data_root,
                download=self.download,
                artifact_dir=self.dirs[i],
                progress=(lambda info, i=i, p=progress: p(i, info)) if progress else None,  # type: ignore[misc]
                checkpoint=self.checkpoints[i] if self.checkpoints else None,
                checkpoint_every=self.checkpoint_every,
            )


class BatchedEngine:
    """Compatible runs stacked and trained together (see the module docstring)."""

    def groups(self, jobs: Sequence[Job], size: int, workers: int = 1) -> list[list[Job]]:
        """Groups of compatible jobs, at most ``size`` each (0: one group per worker)."""
        return make_groups(jobs, lambda job: job.spec, size, workers)

    def run(
        self, requests: Sequence[RunRequest], options: ExecutionOptions, plugins: LoadedPlugins
    ) -> Iterator[RunRecord]:
        """Train ``requests`` (a group) together; yield each record in order."""
        specs = [build_spec(request.spec, plugins.registry) for request in requests]
        callbacks = [epoch_progress(request) for request in requests]

        def progress(index: int, info: dict[str, Any]) -> None:
            callback = callbacks[index]
            if callback is not None:
                callback(info)

        yield from train_group(
            specs,
            plugins=plugins,
            device=resolve_device(requests[0].device if requests else options.device),
            data_root=options.data_root,
            download=options.download,
            artifact_dirs=[request.artifact_dir for request in requests],
            progress=progress if any(callbacks) else None,
            checkpoints=[request.checkpoint for request in requests],
            checkpoint_every=options.checkpoint_every,
        )
