"""One training run, from a spec to a result record.

Per iteration (the hot path): forward, loss, backward (dense gradients), the topology update
when one is due (every ``update_period`` iterations counted from the start), the optimizer
step with the masks fused into it, and nothing else: losses and accuracies accumulate on the
device and are read once per epoch, so the loop never waits on the device.

The default order is the same for every criterion: prune and grow on the current weights and
the current batch's gradient, then the optimizer step (newly grown weights thus get their first
update in the same iteration). ``update_order = "paper"`` reproduces the paper's code, where
magnitude, SET and random update the masks *after* the optimizer step.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from dstbench.analysis.health import health_block
from dstbench.analysis.movement import mask_movement, snapshot
from dstbench.analysis.overlap import derive_seed, overlap, pruned_sets
from dstbench.api import layer_densities
from dstbench.engine.context import EpochStats, RunContext
from dstbench.engine.data import (
    Batches,
    DatasetContext,
    DatasetParts,
    Split,
    TensorSplit,
    carve_validation,
    make_batches,
    resolve_data_root,
)
from dstbench.engine.flops import count_macs, sparse_macs
from dstbench.engine.optim import MaskedSGD
from dstbench.engine.provenance import provenance
from dstbench.engine.spec import normalize_spec, paper_substitutions, spec_hash
from dstbench.errors import DstbenchError
from dstbench.plugins import LoadedPlugins, get_plugins
from dstbench.registry import ComponentInfo, CriterionInfo, GrowthInfo
from dstbench.sparse.masker import Masker, sparse_parameters, update_violations

Progress = Callable[[dict[str, Any]], None]


class RunStopped(Exception):
    """Training ended early with a final status (``diverged`` or ``invalid``)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class _Setup:
    """What a run trains on: the model, its batches, and facts about the task."""

    model: nn.Module
    parts: DatasetParts
    train: Batches
    val: Batches | None
    test: Batches
    #: Binary task with one logit per sample (binary cross-entropy on logits).
    binary: bool
    #: Forward MACs per sample of every Linear/Conv weight.
    macs: dict[str, int]


@dataclass
class _DST:
    """The resolved components of a DST run."""

    criterion: CriterionInfo
    criterion_params: Mapping[str, Any]
    growth: GrowthInfo
    growth_params: Mapping[str, Any]
    schedule: ComponentInfo
    schedule_params: Mapping[str, Any]
    compared: list[tuple[str, CriterionInfo, Mapping[str, Any]]]
    #: True when the masks are updated after the optimizer step (the paper's "before" order).
    update_after_step: bool


@dataclass
class _Best:
    """The best-validation epoch and a copy of the model's state at that epoch."""

    accuracy: float = -math.inf
    epoch: int | None = None
    state: dict[str, torch.Tensor] | None = None

    def consider(self, epoch: int, accuracy: float, model: nn.Module) -> None:
        """Keep ``model``'s state if ``accuracy`` beats the best so far."""
        if accuracy > self.accuracy:
            self.accuracy, self.epoch = accuracy, epoch
            self.state = _snapshot(model, self.state)


@dataclass
class _Accumulator:
    """Epoch totals kept on the device, so that no iteration waits for a host read."""

    loss: torch.Tensor
    correct: torch.Tensor
    seen: int = 0

    @classmethod
    def on(cls, device: torch.device) -> _Accumulator:
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


def _sample_inputs(split: Split, n: int) -> torch.Tensor:
    """The first ``n`` inputs of ``split``, for the output-shape check and the MAC count.

    Read directly (no copy of the whole split to the device, no DataLoader workers); the
    global RNG is left untouched in case the dataset's transform draws from it.
    """
    if isinstance(split, TensorSplit):
        return split.x[:n]
    with torch.random.fork_rng(devices=[]):
        return torch.stack([split[i][0] for i in range(min(n, len(split)))])  # type: ignore[arg-type]


def _snapshot(model: nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Copy the model's state into reused buffers (allocated on first use)."""
    state = model.state_dict()
    if into is None:
        return {k: v.detach().clone() for k, v in state.items()}
    for key, value in state.items():
        into[key].copy_(value)
    return into


def _loss(
    out: torch.Tensor, y: torch.Tensor, binary: bool, reduction: str = "mean"
) -> torch.Tensor:
    if binary:
        return nn.functional.binary_cross_entropy_with_logits(
            out.squeeze(1), y.to(out.dtype), reduction=reduction
        )
    return nn.functional.cross_entropy(out, y, reduction=reduction)


def _correct(out: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
    predicted = (out.squeeze(1) > 0).long() if binary else out.argmax(1)
    return (predicted == y).sum()


class Trainer:
    """Trains one normalized spec and fills its result record."""

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        plugins: LoadedPlugins,
        device: torch.device,
        data_root: str | Path | None,
        download: bool,
        artifact_dir: Path | None,
        progress: Progress | None,
    ) -> None:
        self.spec = spec
        self.plugins = plugins
        self.registry = plugins.registry
        self.device = device
        self.data_root = data_root
        self.download = download
        self.artifact_dir = artifact_dir
        self.progress = progress
        self.run_id = spec_hash(spec)
        self.seed = int(spec["seed"])
        self.dst = self._resolve_dst() if spec["method"] == "dst" else None
        self.masker: Masker | None = None
        self.updates: list[dict[str, Any]] = []
        self.overlaps: list[dict[str, Any]] = []
        #: Each sparse layer's mask before training (for the mask movement).
        self.initial_masks: dict[str, torch.Tensor] | None = None
        self.curve: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {"update_seconds": 0.0, "eval_seconds": 0.0}
        self.step = 0
        self.total_steps = 0
        #: ζ of the latest topology update.
        self.prune_fraction: float | None = None
        #: Set once the model and masks exist (observers get it).
        self.run: RunContext | None = None

    # --- setup ---------------------------------------------------------------------------

    def _resolve_dst(self) -> _DST:
        spec, registry = self.spec, self.registry
        criterion = cast(CriterionInfo, registry.criteria[spec["criterion"]["name"]])
        compared = [
            (c["name"], cast(CriterionInfo, registry.criteria[c["name"]]), c["params"])
            for c in spec["compare_criteria"]
        ]
        return _DST(
            criterion=criterion,
            criterion_params=spec["criterion"]["params"],
            growth=cast(GrowthInfo, registry.growth[spec["growth"]["name"]]),
            growth_params=spec["growth"]["params"],
            schedule=registry.schedules[spec["schedule"]["name"]],
            schedule_params=spec["schedule"]["params"],
            compared=compared,
            update_after_step=spec["update_order"] == "paper" and criterion.paper_order == "before",
        )

    def _build(self) -> _Setup:
        spec = self.spec
        dataset_info = self.registry.datasets[spec["dataset"]["name"]]
        context = DatasetContext(
            root=resolve_data_root(self.data_root),
            download=self.download,
            validation=spec["validation"],
        )
        parts = dataset_info.fn(context, **spec["dataset"]["params"])
        if not isinstance(parts, DatasetParts):
            got = type(parts).__name__
            msg = f"dataset {dataset_info.name!r} returned {got}, expected DatasetParts"
            raise DstbenchError(msg)
        val: Split | None
        if spec["validation"] == "paper" and parts.val is not None:
            train, val = parts.train, parts.val
        else:
            train, val = carve_validation(parts.train, spec["val_fraction"])

        torch.manual_seed(self.seed)  # the model's initialisation
        model_info = self.registry.models[spec["model"]["name"]]
        model = model_info.fn(parts.input_shape, parts.num_classes, **spec["model"]["params"])
        model = model.to(self.device)

        data_generator = torch.Generator().manual_seed(derive_seed(self.seed, "data"))
        batch, workers = spec["batch_size"], parts.num_workers

        def batches(split: Split, **options: Any) -> Batches:
            return make_batches(split, batch, device=self.device, num_workers=workers, **options)

        train_batches = batches(
            train, shuffle=True, generator=data_generator, transform=parts.train_transform
        )
        val_batches = batches(val, shuffle=False) if val is not None else None
        test_batches = batches(parts.test, shuffle=False)

        sample = _sample_inputs(train, 2).to(self.device)
        with torch.no_grad():
            out = model.eval()(sample)
        model.train()
        binary = parts.num_classes == 2 and out.dim() == 2 and out.shape[1] == 1
        if out.dim() != 2 or (out.shape[1] != parts.num_classes and not binary):
            msg = (
                f"model {model_info.name!r} returned output of shape {tuple(out.shape)} for "
                f"dataset {dataset_info.name!r}; expected (batch, {parts.num_classes})"
            )
            raise DstbenchError(msg)
        macs = count_macs(model, sample)
        return _Setup(model, parts, train_batches, val_batches, test_batches, binary, macs)

    def _build_masker(self, model: nn.Module) -> Masker | None:
        spec = self.spec
        if spec["method"] == "dense":
            return None
        layers = sparse_parameters(
            model, dense_first=spec["dense_first"], dense_last=spec["dense_last"]
        )
        if not layers:
            msg = f"model {spec['model']['name']!r} has no Linear or Conv weight to sparsify"
            raise DstbenchError(msg)
        densities = layer_densities(
            spec["distribution"]["name"],
            {name: tuple(w.shape) for name, w in layers},
            spec["density"],
            **spec["distribution"]["params"],
        )
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "topology"))
        return Masker(layers, densities, generator=generator, mask_init=spec["mask_init"])

    def _optimizer(self, model: nn.Module) -> MaskedSGD:
        spec = self.spec
        optimizer = MaskedSGD(
            model.parameters(),
            lr=spec["lr"],
            momentum=spec["momentum"],
            weight_decay=spec["weight_decay"],
            nesterov=spec["nesterov"] and spec["momentum"] > 0,
        )
        if self.masker is not None:
            optimizer.set_masks(self.masker.float_masks())
        return optimizer

    # --- evaluation ----------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, batches: Batches, binary: bool) -> tuple[float, float]:
        started = time.perf_counter()
        model.eval()
        totals = _Accumulator.on(self.device)
        for xb, yb in batches:
            out = model(xb)
            totals.loss += _loss(out, yb, binary, reduction="sum")
            totals.correct += _correct(out, yb, binary)
            totals.seen += yb.shape[0]
        model.train()
        self.timings["eval_seconds"] += time.perf_counter() - started
        return totals.means()

    # --- the topology update -------------------------------------------------------------

    def _due(self) -> float | None:
        """ζ when a topology update is due at the current step, else None."""
        if self.dst is None or self.step % self.spec["update_period"]:
            return None
        zeta = self.dst.schedule.fn(
            self.step, self.total_steps, self.spec["prune_fraction"], **self.dst.schedule_params
        )
        return float(zeta) if zeta > 0 else None

    def _topology_update(self, run: RunContext, optimizer: MaskedSGD, fraction: float) -> None:
        assert self.masker is not None and self.dst is not None
        started = time.perf_counter()
        dst = self.dst
        if dst.compared:
            sets = pruned_sets(
                self.masker,
                dst.compared,
                prune_fraction=fraction,
                step=self.step,
                seed=self.seed,
                momentum=optimizer.momentum_buffer,
            )
            self.overlaps.append({"step": self.step, "prune_fraction": fraction, **overlap(sets)})
        update = self.masker.update(
            step=self.step,
            prune_fraction=fraction,
            criterion=dst.criterion,
            criterion_params=dst.criterion_params,
            growth=dst.growth,
            growth_params=dst.growth_params,
            momentum=optimizer.momentum_buffer,
            reset_momentum=self.spec["reset_momentum"],
        )
        self.prune_fraction = fraction
        summary = update.summary()
        summary["layers"] = {u.name: [u.n_pruned, u.n_grown] for u in update.layers}
        self.updates.append(summary)
        if dst.growth.exact:
            problems = update_violations(update)
            if problems:
                raise RunStopped("invalid", problems[0])
        self.plugins.hook.dstbench_topology_update(run=run, update=update)
        self.timings["update_seconds"] += time.perf_counter() - started

    def _check_no_empty_layer(self) -> None:
        """A sparse layer with no active weight cuts the network: the run measures nothing."""
        if self.masker is None:
            return
        for layer in self.masker.layers:
            if layer.target == 0:
                msg = (
                    f"layer {layer.name!r} has 0 active weights of {layer.numel} (density "
                    f"{self.spec['density']:g}, distribution "
                    f"{self.spec['distribution']['name']}): the network is cut"
                )
                raise RunStopped("invalid", msg)

    def _check_invariants(self) -> None:
        assert self.masker is not None
        exact = self.dst is None or self.dst.growth.exact
        problems = self.masker.violations(exact_growth=exact)
        if problems:
            raise RunStopped("invalid", f"step {self.step}: {problems[0]}")

    def _update_iteration(
        self, run: RunContext, optimizer: MaskedSGD, fraction: float, loss: torch.Tensor
    ) -> None:
        """An iteration with a topology update: prune/grow and step in the configured order."""
        value = loss.item()  # one host read per update, not per iteration
        if not math.isfinite(value):
            # NaN weights would make every criterion's scores NaN: stop here.
            raise RunStopped("diverged", f"training loss became {value} at step {self.step}")
        assert self.dst is not None
        if self.dst.update_after_step:
            optimizer.step()
            self._topology_update(run, optimizer, fraction)
        else:
            self._topology_update(run, optimizer, fraction)
            optimizer.step()
        self._check_invariants()

    # --- the loop ------------------------------------------------------------------------

    def _train_epoch(
        self, setup: _Setup, optimizer: MaskedSGD, run: RunContext, totals: _Accumulator
    ) -> None:
        model, binary = setup.model, setup.binary
        for xb, yb in setup.train:
            optimizer.zero_grad(set_to_none=False)
            out = model(xb)
            loss = _loss(out, yb, binary)
            loss.backward()
            self.step += 1
            fraction = self._due()
            if fraction is None:
                optimizer.step()
            else:
                self._update_iteration(run, optimizer, fraction, loss)
            totals.loss.add_(loss.detach(), alpha=yb.shape[0])
            totals.correct.add_(_correct(out.detach(), yb, binary))
            totals.seen += yb.shape[0]

    def train(self, record: dict[str, Any]) -> None:
        """Run the training and fill ``record`` (status, metrics, density, topology)."""
        spec = self.spec
        setup = self._build()
        model = setup.model
        self.masker = self._build_masker(model)
        if self.masker is not None:
            self.initial_masks = snapshot({la.name: la.mask for la in self.masker.layers})
        if spec.get("jaccard_at_init"):
            self._overlap_at_init(setup)
            record["status"] = "ok"
            self._finish(record, setup, _Best())
            return
        optimizer = self._optimizer(model)
        epochs = spec["epochs"]
        milestones = sorted({max(1, round(f * epochs)) for f in spec["lr_milestones"]})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones, gamma=spec["lr_gamma"]
        )
        self.total_steps = epochs * len(setup.train)
        run = RunContext(
            spec=spec,
            run_id=self.run_id,
            model=model,
            device=self.device,
            masker=self.masker,
            artifact_dir=self.artifact_dir,
        )
        self.run = run
        self.plugins.hook.dstbench_run_start(run=run)

        best = _Best()
        totals = _Accumulator.on(self.device)
        train_started = time.perf_counter()
        try:
            self._check_no_empty_layer()
            for epoch in range(1, epochs + 1):
                epoch_started = time.perf_counter()
                totals.reset()
                self._train_epoch(setup, optimizer, run, totals)
                train_loss, train_accuracy = totals.means()
                if not math.isfinite(train_loss):
                    msg = f"training loss became {train_loss} in epoch {epoch}"
                    raise RunStopped("diverged", msg)
                scheduler.step()
                val_loss = val_accuracy = None
                if setup.val is not None:
                    val_loss, val_accuracy = self._evaluate(model, setup.val, setup.binary)
                    if not math.isfinite(val_loss):
                        msg = f"validation loss became {val_loss} in epoch {epoch}"
                        raise RunStopped("diverged", msg)
                    best.consider(epoch, val_accuracy, model)
                stats = EpochStats(
                    epoch=epoch,
                    train_loss=train_loss,
                    train_accuracy=train_accuracy,
                    val_loss=val_loss,
                    val_accuracy=val_accuracy,
                    lr=float(optimizer.param_groups[0]["lr"]),
                    prune_fraction=self.prune_fraction,
                    density=self.masker.density() if self.masker else 1.0,
                    seconds=time.perf_counter() - epoch_started,
                )
                self.curve.append(stats.as_dict())
                self.plugins.hook.dstbench_epoch_end(run=run, epoch=stats)
                if self.progress:
                    self.progress(
                        {
                            "epoch": epoch,
                            "epochs": epochs,
                            "train_loss": train_loss,
                            "val_accuracy": val_accuracy,
                        }
                    )
            if self.masker is not None:
                self._check_invariants()
            record["status"] = "ok"
        except RunStopped as stop:
            record["status"] = stop.status
            record["reason"] = stop.reason
        train_seconds = time.perf_counter() - train_started - self.timings["eval_seconds"]
        self.timings.update(
            train_seconds=train_seconds,
            steps=self.step,
            seconds_per_step=train_seconds / max(self.step, 1),
        )
        self._finish(record, setup, best)

    def _overlap_at_init(self, setup: _Setup) -> None:
        """The paper's Fig. 6a: one pruning step by every compared criterion on the untrained
        weights and the first training batch's dense gradient; nothing is trained or changed.
        Full layers (density 1) are pruned too: no growth follows."""
        assert self.masker is not None and self.dst is not None
        if len(self.dst.compared) < 2:
            msg = "jaccard_at_init: needs at least two compare_criteria"
            raise DstbenchError(msg)
        model, binary = setup.model, setup.binary
        xb, yb = next(iter(setup.train))
        model.zero_grad(set_to_none=False)
        _loss(model(xb), yb, binary).backward()
        fraction = float(self.spec["prune_fraction"])
        sets = pruned_sets(
            self.masker,
            self.dst.compared,
            prune_fraction=fraction,
            step=0,
            seed=self.seed,
            include_full=True,
        )
        self.overlaps.append({"step": 0, "prune_fraction": fraction, **overlap(sets)})
        model.zero_grad(set_to_none=False)

    # --- the record ----------------------------------------------------------------------

    def _finish(self, record: dict[str, Any], setup: _Setup, best: _Best) -> None:
        model = setup.model
        metrics = record["metrics"]
        metrics["final_train_loss"] = self.curve[-1]["train_loss"] if self.curve else None
        metrics["curve"] = self.curve
        if record["status"] == "ok" and not self.spec.get("jaccard_at_init"):
            # The test set is touched only here, after training: final model, then best-val.
            metrics["test_loss"], metrics["test_accuracy"] = self._evaluate(
                model, setup.test, setup.binary
            )
            if not math.isfinite(metrics["test_loss"]):
                record["status"] = "diverged"
                record["reason"] = f"test loss is {metrics['test_loss']}"
                metrics["test_accuracy"] = None
            if best.state is not None:
                final_state = _snapshot(model, None)
                model.load_state_dict(best.state)
                _, metrics["best_val_test_accuracy"] = self._evaluate(
                    model, setup.test, setup.binary
                )
                model.load_state_dict(final_state)
                metrics["best_val_accuracy"] = best.accuracy
                metrics["best_val_epoch"] = best.epoch
        self._fill_density(record, setup.macs)
        record["topology"] = {
            "updates": len(self.updates),
            "pruned": sum(u["pruned"] for u in self.updates),
            "grown": sum(u["grown"] for u in self.updates),
            "per_update": self.updates,
        }
        if self.overlaps:
            record["analysis"] = {"overlap": self.overlaps}
        if self.masker is not None and self.initial_masks is not None:
            final = {layer.name: layer.mask for layer in self.masker.layers}
            record["mask_movement"] = mask_movement(self.initial_masks, final)
        if record["status"] == "ok" and not self.spec.get("jaccard_at_init"):
            reached = [c.get(k) for c in self.curve for k in ("train_accuracy", "val_accuracy")]
            reached.append(metrics.get("test_accuracy"))
            record["health"] = health_block(setup.parts.num_classes, reached)
        record["fidelity"] = fidelity_block(self.spec)
        if setup.parts.notes:
            record["data_notes"] = setup.parts.notes

    def _fill_density(self, record: dict[str, Any], macs: Mapping[str, int]) -> None:
        metrics, density = record["metrics"], record["density"]
        metrics["dense_macs_per_sample"] = sum(macs.values())
        if self.masker is None:
            density.update(achieved=1.0, layers={})
            metrics["sparse_macs_per_sample"] = sum(macs.values())
            return
        per_layer = self.masker.layer_densities()
        density.update(
            achieved=self.masker.density(),
            layers={
                layer.name: {
                    "numel": layer.numel,
                    "target": layer.target,
                    "density": per_layer[layer.name],
                }
                for layer in self.masker.layers
            },
        )
        metrics["sparse_macs_per_sample"] = sparse_macs(macs, per_layer)


def fidelity_block(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The record's ``fidelity``: which of the paper code's behaviours the run used in place of
    dstbench's defaults (``paper`` when all that apply, ``mixed`` when some, else ``default``).
    """
    substitutions = paper_substitutions(spec)
    applicable = {"mask_init", "validation"}
    if spec["method"] == "dst":
        applicable |= {"update_order", "reset_momentum"}
        growth, criterion = spec["growth"]["name"], spec["criterion"]["name"]
        applicable |= {"growth"} if growth in ("random", "random_bernoulli") else set()
        applicable |= {"criterion"} if criterion in ("set", "set_paper") else set()
    mode = "default"
    if substitutions:
        mode = "paper" if applicable <= set(substitutions) else "mixed"
    return {"mode": mode, "substitutions": substitutions}


def new_record(spec: dict[str, Any], run_id: str) -> dict[str, Any]:
    """An empty record for ``spec``; ``status`` stays ``failed`` until training succeeds."""
    return {
        "schema": 1,
        "run_id": run_id,
        "status": "failed",
        "spec": spec,
        "metrics": {"test_accuracy": None, "best_val_test_accuracy": None},
        "density": {"target": spec["density"]},
        "topology": {"updates": 0, "pruned": 0, "grown": 0, "per_update": []},
        "timings": {},
    }


def _error(exc: BaseException, where: str = "") -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": f"{where}{exc}",
        "user_error": isinstance(exc, DstbenchError),
        "traceback": traceback.format_exc(),
    }


def execute(
    spec: Mapping[str, Any],
    *,
    plugins: LoadedPlugins | None = None,
    device: str | torch.device | None = "cpu",
    data_root: str | Path | None = None,
    download: bool = False,
    artifact_dir: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train one run and return its result record (never raises for a failing run).

    :param spec: a raw or normalized run spec.
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
    :param data_root: data directory (default: ``$DSTBENCH_DATA`` or the user cache).
    :param download: allow datasets to download missing files.
    :param artifact_dir: a directory observers may write into.
    :param progress: called after every epoch with ``{"epoch", "epochs", ...}``.
    :raises SpecError: when the spec is invalid (before anything runs).
    :returns: the record: ``status`` is ``ok``, ``failed`` (with ``error``), ``diverged`` or
        ``invalid`` (with ``reason``).
    """
    plugins = plugins or get_plugins()
    normalized = normalize_spec(spec, plugins.registry)
    resolved_device = resolve_device(device)
    record = new_record(normalized, spec_hash(normalized))
    started = time.perf_counter()
    trainer = Trainer(
        normalized,
        plugins=plugins,
        device=resolved_device,
        data_root=data_root,
        download=download,
        artifact_dir=artifact_dir,
        progress=progress,
    )
    try:
        trainer.train(record)
    except Exception as exc:  # any failure is recorded; the caller decides what to do next
        record["status"] = "failed"
        record["error"] = _error(exc)
    record["timings"] = {**trainer.timings, "total_seconds": time.perf_counter() - started}
    record["provenance"] = provenance(normalized, plugins, resolved_device)
    if trainer.run is not None:
        try:
            plugins.hook.dstbench_run_end(run=trainer.run, record=record)
        except Exception as exc:  # a broken observer fails the run, visibly
            record["status"] = "failed"
            record["error"] = _error(exc, "in dstbench_run_end: ")
    return record
