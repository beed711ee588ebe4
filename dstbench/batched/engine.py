"""The batched engine: K compatible runs trained together, one forward/backward per step.

Each run is still a single-engine :class:`~dstbench.engine.train.Trainer`: it resolves the run's
components, builds its Masker, decides when its topology updates are due, performs them with
the unchanged criterion and growth plugins, checks its invariants, and writes its record. What
the runs share is the arithmetic of a step: their parameters are stacked (see
:mod:`dstbench.batched.stack`), each run's batch is drawn from its own seeded data order, and one
stacked forward/backward and one fused masked SGD step train them all. A run that diverges,
breaks an invariant or fails is recorded as such and dropped from the group; the others go on.

Per step, in each run's own order: forward and backward on every run's batch; then, for the
runs whose update is due, the topology update before the step (or after it, for the paper's
order); the stacked optimizer step; and the invariant checks of the runs that updated.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch
from torch import nn

from dstbench.analysis.overlap import derive_seed
from dstbench.batched.forward import StackedForward, Unbatchable, stacked_forward
from dstbench.batched.grouping import group_key
from dstbench.batched.stack import RunSlot, StackedRuns, StackedSGD
from dstbench.engine.context import EpochStats, RunContext
from dstbench.engine.data import (
    DatasetContext,
    DatasetParts,
    TensorBatches,
    TensorSplit,
    carve_validation,
    make_batches,
    resolve_data_root,
)
from dstbench.engine.flops import count_macs
from dstbench.engine.provenance import provenance
from dstbench.engine.spec import normalize_spec, spec_hash
from dstbench.engine.train import (
    RunStopped,
    Trainer,
    _Best,
    _error,
    _sample_inputs,
    _Setup,
    execute,
    new_record,
    resolve_device,
)
from dstbench.errors import DstbenchError
from dstbench.plugins import LoadedPlugins, get_plugins

#: ``progress(index, info)``: run ``index`` of the group finished an epoch (``info`` as the
#: single engine's progress callback gets it).
GroupProgress = Callable[[int, dict[str, Any]], None]


@dataclass
class _Member:
    """One run of the group: the single engine's per-run state and its record."""

    index: int
    trainer: Trainer
    record: dict[str, Any]
    started: float
    setup: _Setup | None = None
    run: RunContext | None = None
    best: _Best = field(default_factory=_Best)
    #: The run's own training batches (its seeded data order and augmentation stream).
    batches: TensorBatches | None = None
    #: Due topology updates happen after the optimizer step (the paper's order).
    after_step: bool = False
    #: ΔT, or 0 for a run without topology updates.
    period: int = 0
    #: Training ended (status in the record); the run leaves the stack at the next compaction.
    stopped: bool = False


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

_Data = tuple[DatasetParts, TensorSplit, TensorSplit | None]


def load_data(
    spec: Mapping[str, Any],
    registry: Any,
    device: torch.device,
    data_root: str | None,
    download: bool,
) -> _Data:
    """The dataset, loaded once for a group, its training and validation splits on the device.

    :raises Unbatchable: when the splits are not in-memory tensors.
    """
    dataset_info = registry.datasets[spec["dataset"]["name"]]
    context = DatasetContext(
        root=resolve_data_root(data_root), download=download, validation=spec["validation"]
    )
    parts = dataset_info.fn(context, **spec["dataset"]["params"])
    if not isinstance(parts, DatasetParts):
        got = type(parts).__name__
        raise DstbenchError(f"dataset {dataset_info.name!r} returned {got}, expected DatasetParts")
    if spec["validation"] == "paper" and parts.val is not None:
        train, val = parts.train, parts.val
    else:
        train, val = carve_validation(parts.train, spec["val_fraction"])
    if not isinstance(train, TensorSplit) or not (val is None or isinstance(val, TensorSplit)):
        raise Unbatchable(f"dataset {dataset_info.name!r} is not an in-memory tensor split")
    return parts, train.to(device), None if val is None else val.to(device)


def part_size(spec: Mapping[str, Any], registry: Any, parts: DatasetParts) -> int:
    """How many runs of ``spec``'s model fit :data:`MEMORY_BUDGET` (at least one)."""
    model_info = registry.models[spec["model"]["name"]]
    with torch.device("meta"):
        model = model_info.fn(parts.input_shape, parts.num_classes, **spec["model"]["params"])
    count = sum(p.numel() for p in model.parameters())
    return max(1, MEMORY_BUDGET // max(1, count * _BYTES_PER_PARAMETER))


class GroupTrainer:
    """Trains a group of compatible normalized specs together (see the module docstring)."""

    def __init__(
        self,
        specs: Sequence[dict[str, Any]],
        *,
        plugins: LoadedPlugins,
        device: torch.device,
        progress: GroupProgress | None,
    ) -> None:
        self.plugins = plugins
        self.registry = plugins.registry
        self.device = device
        self.progress = progress
        now = time.perf_counter()
        self.members = [
            _Member(
                index=i,
                trainer=Trainer(
                    spec,
                    plugins=plugins,
                    device=device,
                    data_root=None,
                    download=False,
                    artifact_dir=None,
                    progress=None,
                ),
                record=new_record(spec, spec_hash(spec)),
                started=now,
            )
            for i, spec in enumerate(specs)
        ]
        self.spec = specs[0]
        self.group_size = len(specs)
        self.active: list[_Member] = []
        self.runs: StackedRuns | None = None
        self.optimizer: StackedSGD | None = None
        self.forward: StackedForward | None = None
        self.step = 0
        self.binary = False
        self.has_val = False
        self.milestones: set[int] = set()

    # --- setup ---------------------------------------------------------------------------

    def build(self, data: _Data) -> None:
        """Every run's model and masks exactly as the single engine makes them, then stacked.

        :raises Unbatchable: when the model cannot be stacked (before training).
        """
        spec = self.spec
        parts, train, val = data
        batch = spec["batch_size"]
        model_info = self.registry.models[spec["model"]["name"]]
        test = make_batches(parts.test, batch, device=self.device, shuffle=False)
        val_batches = make_batches(val, batch, device=self.device, shuffle=False) if val else None
        sample = _sample_inputs(train, 2).to(self.device)
        macs: dict[str, int] | None = None
        binary = False
        slots = []
        for member in self.members:
            trainer = member.trainer
            torch.manual_seed(trainer.seed)  # the model's initialisation, as the single engine
            model = model_info.fn(parts.input_shape, parts.num_classes, **spec["model"]["params"])
            model = model.to(self.device)
            if macs is None:
                self.forward = stacked_forward(model)
                with torch.no_grad():
                    out = model.eval()(sample)
                model.train()
                binary = parts.num_classes == 2 and out.dim() == 2 and out.shape[1] == 1
                if out.dim() != 2 or (out.shape[1] != parts.num_classes and not binary):
                    msg = (
                        f"model {model_info.name!r} returned output of shape "
                        f"{tuple(out.shape)}; expected (batch, {parts.num_classes})"
                    )
                    raise DstbenchError(msg)
                macs = count_macs(model, sample)
            generator = torch.Generator().manual_seed(derive_seed(trainer.seed, "data"))
            train_batches = TensorBatches(
                train, batch, shuffle=True, generator=generator, transform=parts.train_transform
            )
            member.setup = _Setup(model, parts, train_batches, val_batches, test, binary, macs)
            member.batches = train_batches
            trainer.masker = trainer._build_masker(model)
            if trainer.dst is not None:
                member.after_step = trainer.dst.update_after_step
                member.period = trainer.spec["update_period"]
            slots.append(RunSlot(model, trainer.masker))
        self.binary = binary
        self.runs = StackedRuns(slots)
        self.optimizer = StackedSGD(
            self.runs,
            lr=spec["lr"],
            momentum=spec["momentum"],
            weight_decay=spec["weight_decay"],
            nesterov=spec["nesterov"] and spec["momentum"] > 0,
        )
        self.active = list(self.members)

    # --- failure handling ----------------------------------------------------------------

    # --- failure handling ----------------------------------------------------------------

    def _stop(self, member: _Member, status: str, reason: str | None, error: Any = None) -> None:
        """End ``member``'s training with ``status``; it leaves the stack at the next compaction."""
        member.record["status"] = status
        if reason is not None:
            member.record["reason"] = reason
        if error is not None:
            member.record["error"] = error
        member.stopped = True
        member.trainer.step = self.step

    def _guarded(self, member: _Member, action: Callable[[], None]) -> None:
        """Run one run's own work; a stop or an error ends that run only."""
        try:
            action()
        except RunStopped as stop:
            self._stop(member, stop.status, stop.reason)
        except Exception as exc:  # recorded as the single engine records it
            self._stop(member, "failed", None, _error(exc))

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
        assert self.runs is not None and member.run is not None
        self.runs.expose_grads(k)
        # The stacked optimizer answers momentum_buffer(param) for run k's own parameters.
        member.trainer._topology_update(member.run, self.optimizer, fraction)  # type: ignore[arg-type]

    def _due(self) -> list[tuple[int, _Member, float]]:
        """(position, run, ζ) of the runs whose topology update is due at this step."""
        due = []
        for k, member in enumerate(self.active):
            if member.period and self.step % member.period == 0:
                member.trainer.step = self.step
                fraction = member.trainer._due()
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
                    self._guarded(member, lambda k=k, m=member, f=fraction: self._topology(k, m, f))
        self.optimizer.step()
        for k, member, fraction in due:
            if member.after_step and not member.stopped:
                self._guarded(member, lambda k=k, m=member, f=fraction: self._topology(k, m, f))
        for _, member, _ in due:
            if not member.stopped:
                self._guarded(member, member.trainer._check_invariants)
        totals.loss.add_(losses.detach(), alpha=yb.shape[1])
        totals.correct.add_(_stacked_correct(out.detach(), yb, self.binary))

    def _train_epoch(self, totals: _Totals) -> None:
        """One epoch for every active run, each on its own seeded data order."""
        first = self.active[0].setup
        assert first is not None and isinstance(first.train, TensorBatches)
        split, batch, transform = first.train.split, first.train.batch_size, first.train.transform
        orders = torch.stack([m.batches.epoch_order() for m in self.active])
        x_shape = split.x.shape[1:]
        count = len(self.active) * min(batch, len(split))
        x_buf = torch.empty((count, *x_shape), dtype=split.x.dtype, device=split.x.device)
        y_buf = torch.empty((count,), dtype=split.y.dtype, device=split.y.device)
        for start in range(0, len(split), batch):
            index = orders[:, start : start + batch]
            k, size = index.shape
            xb, yb = x_buf[: k * size], y_buf[: k * size]
            torch.index_select(split.x, 0, index.reshape(-1), out=xb)
            torch.index_select(split.y, 0, index.reshape(-1), out=yb)
            xb, yb = xb.view(k, size, *x_shape), yb.view(k, size)
            if transform is not None:  # each run's augmentation from its own generator
                for j, member in enumerate(self.active):
                    xb[j].copy_(transform(xb[j], member.batches.generator))  # type: ignore[arg-type]
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
            member.trainer.timings["eval_seconds"] += seconds
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
            self.optimizer.lr = self.optimizer.lr * self.spec["lr_gamma"]
        if not self.active:
            return
        val = self._evaluate(self.active[0].setup.val) if self.has_val else None  # type: ignore[union-attr]
        epochs = self.spec["epochs"]
        for j, member in enumerate(self.active):
            trainer, setup = member.trainer, member.setup
            assert setup is not None and member.run is not None
            val_loss = val[0][j] if val else None
            val_accuracy = val[1][j] if val else None
            if val_accuracy is not None:
                member.best.consider(epoch, val_accuracy, setup.model)
            stats = EpochStats(
                epoch=epoch,
                train_loss=losses[j],
                train_accuracy=accuracies[j],
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                lr=float(self.optimizer.lr),
                prune_fraction=trainer.prune_fraction,
                density=trainer.masker.density() if trainer.masker else 1.0,
                seconds=seconds,
            )
            trainer.curve.append(stats.as_dict())
            run = member.run
            self._guarded(
                member, lambda s=stats, r=run: self.plugins.hook.dstbench_epoch_end(run=r, epoch=s)
            )
            if self.progress:
                info = {
                    "epoch": epoch,
                    "epochs": epochs,
                    "train_loss": losses[j],
                    "val_accuracy": val_accuracy,
                }
                self.progress(member.index, info)
        self._compact()

    def train(self) -> None:
        """Train every run of the group; each record gets its status (records are completed by
        :meth:`finish`)."""
        spec = self.spec
        epochs = spec["epochs"]
        self.milestones = set(sorted({max(1, round(f * epochs)) for f in spec["lr_milestones"]}))
        first = self.active[0].setup
        assert first is not None
        self.has_val = first.val is not None
        total_steps = epochs * len(first.train)
        for member in self.active:
            trainer, setup = member.trainer, member.setup
            assert setup is not None
            trainer.total_steps = total_steps
            member.run = RunContext(
                spec=trainer.spec,
                run_id=trainer.run_id,
                model=setup.model,
                device=self.device,
                masker=trainer.masker,
                artifact_dir=trainer.artifact_dir,
            )
            trainer.run = member.run
            self._guarded(member, lambda r=member.run: self.plugins.hook.dstbench_run_start(run=r))
        self._compact()
        train_started = time.perf_counter()
        for epoch in range(1, epochs + 1):
            if not self.active:
                break
            epoch_started = time.perf_counter()
            totals = _Totals.on(len(self.active), self.device)
            self._train_epoch(totals)
            if not self.active:
                break
            self._epoch_end(epoch, totals, time.perf_counter() - epoch_started)
        for member in self.active:
            if member.trainer.masker is not None:
                self._guarded(member, member.trainer._check_invariants)
            if not member.stopped:
                member.record["status"] = "ok"
        self._compact()
        train_seconds = time.perf_counter() - train_started
        for member in self.members:
            timings = member.trainer.timings
            timings.update(
                train_seconds=train_seconds - timings["eval_seconds"],
                steps=member.trainer.step if member.stopped else self.step,
                group_size=self.group_size,
            )
            timings["seconds_per_step"] = timings["train_seconds"] / max(timings["steps"], 1)

    # --- the records ---------------------------------------------------------------------

    def fail_active(self, exc: BaseException) -> None:
        """A failure of the shared step: every run still training is recorded as failed."""
        for member in self.active:
            self._stop(member, "failed", None, _error(exc))
        self.active = []

    def finish(self, group_started: float) -> list[dict[str, Any]]:
        """Complete every run's record as the single engine does, in the group's order."""
        records = []
        device = self.device
        for member in self.members:
            trainer, record = member.trainer, member.record
            if member.setup is not None:
                try:
                    trainer._finish(record, member.setup, member.best)
                except Exception as exc:
                    record["status"] = "failed"
                    record["error"] = _error(exc)
            record["timings"] = {
                **trainer.timings,
                "total_seconds": time.perf_counter() - group_started,
            }
            record["provenance"] = provenance(trainer.spec, self.plugins, device)
            if trainer.run is not None:
                try:
                    self.plugins.hook.dstbench_run_end(run=trainer.run, record=record)
                except Exception as exc:  # a broken observer fails the run, visibly
                    record["status"] = "failed"
                    record["error"] = _error(exc, "in dstbench_run_end: ")
            records.append(record)
        return records


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


def execute_group(
    specs: Sequence[Mapping[str, Any]],
    *,
    plugins: LoadedPlugins | None = None,
    device: str | torch.device | None = "cpu",
    data_root: str | None = None,
    download: bool = False,
    artifact_dirs: Sequence[Any] | None = None,
    progress: GroupProgress | None = None,
    stream: TextIO | None = None,
) -> list[dict[str, Any]]:
    """Train compatible runs together and return their records, in order (never raises for
    a failing run).

    Each record is what :func:`dstbench.engine.train.execute` writes for that spec (the same
    run id, status, curve and per-update counts; weights equal up to float reassociation),
    with ``timings.group_size`` added and ``train_seconds`` the group's training time.
    When the model or the data cannot be stacked, one line on ``stream`` (default stderr)
    says why and the runs are trained one after the other by the single engine.

    :param specs: raw or normalized run specs that :func:`group_key` puts in one group.
    :param artifact_dirs: one directory (or None) per spec, for observers.
    :param progress: ``progress(index, info)`` after every epoch of run ``index``.
    :raises SpecError: when a spec is invalid.
    :raises DstbenchError: when the specs are not compatible.
    """
    plugins = plugins or get_plugins()
    normalized = [normalize_spec(spec, plugins.registry) for spec in specs]
    if not normalized:
        return []
    if any(spec.get("jaccard_at_init") for spec in normalized):
        # one pruning step on untrained weights: nothing to batch; the single engine does it
        raise DstbenchError("batched engine: jaccard_at_init runs need the single engine")
    keys = {group_key(spec) for spec in normalized}
    if len(keys) > 1:
        raise DstbenchError(
            "batched engine: these runs cannot train together (they differ in model, dataset "
            "or training hyperparameters)"
        )
    resolved = resolve_device(device)
    dirs = list(artifact_dirs or [None] * len(normalized))
    try:
        data = load_data(normalized[0], plugins.registry, resolved, data_root, download)
        size = part_size(normalized[0], plugins.registry, data[0])
    except Unbatchable as why:
        return _fallback(
            normalized, why, plugins, resolved, data_root, download, dirs, progress, stream
        )
    except Exception as exc:  # the data cannot be loaded: every run fails as it would alone
        error = _error(exc)
        records = []
        for spec in normalized:
            record = new_record(spec, spec_hash(spec))
            record["error"] = error
            record["provenance"] = provenance(spec, plugins, resolved)
            records.append(record)
        return records
    records: list[dict[str, Any]] = []
    for first in range(0, len(normalized), size):
        part = slice(first, first + size)

        def offset(index: int, info: dict[str, Any], first: int = first) -> None:
            assert progress is not None
            progress(first + index, info)

        chunk = _train_part(
            normalized[part], data, plugins, resolved, dirs[part], offset if progress else None
        )
        if isinstance(chunk, Unbatchable):
            return _fallback(
                normalized, chunk, plugins, resolved, data_root, download, dirs, progress, stream
            )
        records += chunk
    return records


def _train_part(
    specs: Sequence[dict[str, Any]],
    data: _Data,
    plugins: LoadedPlugins,
    device: torch.device,
    dirs: Sequence[Any],
    progress: GroupProgress | None,
) -> list[dict[str, Any]] | Unbatchable:
    started = time.perf_counter()
    group = GroupTrainer(specs, plugins=plugins, device=device, progress=progress)
    for member, directory in zip(group.members, dirs, strict=True):
        member.trainer.artifact_dir = directory
    try:
        group.build(data)
    except Unbatchable as why:
        return why
    except Exception as exc:  # a setup failure fails every run of the group
        for member in group.members:
            member.record["status"] = "failed"
            member.record["error"] = _error(exc)
            member.setup = None
        return group.finish(started)
    try:
        group.train()
    except Exception as exc:
        group.fail_active(exc)
    return group.finish(started)


def _fallback(
    specs: Sequence[dict[str, Any]],
    why: Exception,
    plugins: LoadedPlugins,
    device: torch.device,
    data_root: str | None,
    download: bool,
    dirs: Sequence[Any],
    progress: GroupProgress | None,
    stream: TextIO | None,
) -> list[dict[str, Any]]:
    """Train ``specs`` one after the other with the single engine, saying why in one line."""
    (stream or sys.stderr).write(
        f"dstbench: batched engine: {why}; training its {len(specs)} run(s) with the single "
        "engine\n"
    )
    return [
        execute(
            spec,
            plugins=plugins,
            device=device,
            data_root=data_root,
            download=download,
            artifact_dir=dirs[i],
            progress=(lambda info, i=i: progress(i, info)) if progress else None,  # type: ignore[misc]
        )
        for i, spec in enumerate(specs)
    ]
