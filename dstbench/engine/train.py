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
from typing import Any

import torch
from torch import nn

from dstbench.analysis.overlap import derive_seed, overlap, pruned_sets
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
from dstbench.engine.optim import MaskedSGD
from dstbench.engine.provenance import provenance
from dstbench.engine.spec import normalize_spec, spec_hash
from dstbench.errors import DstbenchError
from dstbench.plugins import LoadedPlugins, get_plugins
from dstbench.registry import CriterionInfo, GrowthInfo
from dstbench.sparse.masker import Masker, TopologyUpdate, sparse_parameters, update_violations

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
    model: nn.Module
    parts: DatasetParts
    train: Batches
    val: Batches | None
    test: Batches
    binary: bool
    macs: dict[str, int]


def _count_macs(model: nn.Module, sample: torch.Tensor) -> dict[str, int]:
    """Forward multiply-accumulates per sample of every Linear/Conv weight (by parameter name)."""
    macs: dict[str, int] = {}
    names = {id(p): n for n, p in model.named_parameters()}
    handles = []

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        weight = module.weight  # type: ignore[union-attr]
        per_output = (
            weight[0].numel() if isinstance(module, nn.modules.conv._ConvNd) else weight.shape[1]
        )
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            per_output = weight.numel() // weight.shape[1]
        outputs = output.numel() // output.shape[0]
        macs[names[id(weight)]] = macs.get(names[id(weight)], 0) + outputs * int(per_output)

    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(sample)
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return macs


def _sample_inputs(split: Split, n: int) -> torch.Tensor:
    """The first ``n`` inputs of ``split``, for the output-shape check and the MAC count.

    Read directly (no copy of the whole split to the device, no DataLoader workers); the
    global RNG is left untouched in case the dataset's transform draws from it.
    """
    if isinstance(split, TensorSplit):
        return split.x[:n]
    with torch.random.fork_rng(devices=[]):
        return torch.stack([split[i][0] for i in range(min(n, len(split)))])  # type: ignore[arg-type]


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
        self.masker: Masker | None = None
        self.updates: list[dict[str, Any]] = []
        self.overlaps: list[dict[str, Any]] = []
        self.curve: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {"update_seconds": 0.0, "eval_seconds": 0.0}
        self.step = 0
        #: Set once the model and masks exist (observers get it).
        self.run: RunContext | None = None

    # --- setup ---------------------------------------------------------------------------

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
        if spec["validation"] == "paper" and parts.val is not None:
            train, val = parts.train, parts.val
        else:
            train, val = carve_validation(parts.train, spec["val_fraction"])

        torch.manual_seed(self.seed)  # the model's initialisation
        model_info = self.registry.models[spec["model"]["name"]]
        model = model_info.fn(parts.input_shape, parts.num_classes, **spec["model"]["params"])
        model = model.to(self.device)

        data_generator = torch.Generator().manual_seed(derive_seed(self.seed, "data"))
        batch = spec["batch_size"]
        loaders = {"num_workers": parts.num_workers, "device": self.device}
        train_batches = make_batches(
            train,
            batch,
            shuffle=True,
            generator=data_generator,
            transform=parts.train_transform,
            **loaders,
        )
        val_batches = (
            make_batches(val, batch, shuffle=False, **loaders) if val is not None else None
        )
        test_batches = make_batches(parts.test, batch, shuffle=False, **loaders)

        sample = _sample_inputs(train, 2).to(self.device)
        with torch.no_grad():
            out = model.eval()(sample)
        model.train()
        binary = parts.num_classes == 2 and out.dim() == 2 and out.shape[1] == 1
        if out.dim() != 2 or (out.shape[1] != parts.num_classes and not binary):
            msg = (
                f"model {model_info.name!r} returned output of shape {tuple(out.shape)} "
                f"for dataset "
                f"{dataset_info.name!r}; expected (batch, {parts.num_classes})"
            )
            raise DstbenchError(msg)
        return _Setup(
            model,
            parts,
            train_batches,
            val_batches,
            test_batches,
            binary,
            _count_macs(model, sample),
        )

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
        from dstbench.api import layer_densities

        densities = layer_densities(
            spec["distribution"]["name"],
            {name: tuple(w.shape) for name, w in layers},
            spec["density"],
            **spec["distribution"]["params"],
        )
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "topology"))
        return Masker(layers, densities, generator=generator, mask_init=spec["mask_init"])

    # --- evaluation ----------------------------------------------------------------------

    @torch.no_grad()
    def _evaluate(self, model: nn.Module, batches: Batches, binary: bool) -> tuple[float, float]:
        started = time.perf_counter()
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = 0
        for xb, yb in batches:
            out = model(xb)
            loss_sum += self._loss(out, yb, binary, reduction="sum")
            correct += self._correct(out, yb, binary)
            seen += yb.shape[0]
        model.train()
        self.timings["eval_seconds"] += time.perf_counter() - started
        return float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1)

    @staticmethod
    def _loss(
        out: torch.Tensor, y: torch.Tensor, binary: bool, reduction: str = "mean"
    ) -> torch.Tensor:
        if binary:
            return nn.functional.binary_cross_entropy_with_logits(
                out.squeeze(1), y.to(out.dtype), reduction=reduction
            )
        return nn.functional.cross_entropy(out, y, reduction=reduction)

    @staticmethod
    def _correct(out: torch.Tensor, y: torch.Tensor, binary: bool) -> torch.Tensor:
        predicted = (out.squeeze(1) > 0).long() if binary else out.argmax(1)
        return (predicted == y).sum()

    # --- the topology update -------------------------------------------------------------

    def _components(self) -> tuple[CriterionInfo, dict[str, Any], GrowthInfo, dict[str, Any]]:
        spec = self.spec
        criterion = self.registry.criteria[spec["criterion"]["name"]]
        growth = self.registry.growth[spec["growth"]["name"]]
        return criterion, spec["criterion"]["params"], growth, spec["growth"]["params"]  # type: ignore[return-value]

    def _topology_update(
        self, run: RunContext, optimizer: MaskedSGD, fraction: float
    ) -> TopologyUpdate:
        assert self.masker is not None
        started = time.perf_counter()
        criterion, c_params, growth, g_params = self._components()
        if self.spec["compare_criteria"]:
            compared = [
                (c["name"], self.registry.criteria[c["name"]], c["params"])
                for c in self.spec["compare_criteria"]
            ]
            sets = pruned_sets(
                self.masker,
                compared,  # type: ignore[arg-type]
                prune_fraction=fraction,
                step=self.step,
                seed=self.seed,
                momentum=optimizer.momentum_buffer,
            )
            self.overlaps.append({"step": self.step, **overlap(sets)})
        update = self.masker.update(
            step=self.step,
            prune_fraction=fraction,
            criterion=criterion,
            criterion_params=c_params,
            growth=growth,
            growth_params=g_params,
            momentum=optimizer.momentum_buffer,
            reset_momentum=self.spec["reset_momentum"],
        )
        summary = update.summary()
        summary["layers"] = {u.name: [u.n_pruned, u.n_grown] for u in update.layers}
        self.updates.append(summary)
        if growth.exact:
            problems = update_violations(update)
            if problems:
                raise RunStopped("invalid", problems[0])
        self.plugins.hook.dstbench_topology_update(run=run, update=update)
        self.timings["update_seconds"] += time.perf_counter() - started
        return update

    def _check_invariants(self) -> None:
        assert self.masker is not None
        exact = self.spec["method"] != "dst" or self._components()[2].exact
        problems = self.masker.violations(exact_growth=exact)
        if problems:
            raise RunStopped("invalid", f"step {self.step}: {problems[0]}")

    # --- the loop ------------------------------------------------------------------------

    def train(self, record: dict[str, Any]) -> None:
        """Run the training and fill ``record`` (status, metrics, density, topology)."""
        spec = self.spec
        setup = self._build()
        model = setup.model
        self.masker = self._build_masker(model)
        optimizer = MaskedSGD(
            model.parameters(),
            lr=spec["lr"],
            momentum=spec["momentum"],
            weight_decay=spec["weight_decay"],
            nesterov=spec["nesterov"] and spec["momentum"] > 0,
        )
        if self.masker is not None:
            optimizer.set_masks(self.masker.float_masks())
        epochs = spec["epochs"]
        milestones = sorted({max(1, round(f * epochs)) for f in spec["lr_milestones"]})
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones, gamma=spec["lr_gamma"]
        )
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

        dst = spec["method"] == "dst"
        total_steps = epochs * len(setup.train)
        period = spec["update_period"] or 0
        schedule = self.registry.schedules[spec["schedule"]["name"]] if dst else None
        update_after_step = False
        if dst:
            criterion = self.registry.criteria[spec["criterion"]["name"]]
            update_after_step = (
                spec["update_order"] == "paper" and criterion.paper_order == "before"
            )  # type: ignore[attr-defined]

        best_val = -math.inf
        best_state: dict[str, torch.Tensor] | None = None
        best_epoch: int | None = None
        fraction: float | None = None
        train_started = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        try:
            for epoch in range(1, epochs + 1):
                epoch_started = time.perf_counter()
                loss_sum.zero_()
                correct.zero_()
                seen = 0
                for xb, yb in setup.train:
                    optimizer.zero_grad(set_to_none=False)
                    out = model(xb)
                    loss = self._loss(out, yb, setup.binary)
                    loss.backward()
                    self.step += 1
                    due = None
                    if dst and self.step % period == 0:
                        assert schedule is not None
                        zeta = schedule.fn(
                            self.step,
                            total_steps,
                            spec["prune_fraction"],
                            **spec["schedule"]["params"],
                        )
                        if zeta > 0:
                            due = fraction = float(zeta)
                    if due is not None and not math.isfinite(loss.item()):
                        # Checked only at updates (one sync per ΔT): NaN weights would make
                        # every criterion's scores NaN.
                        raise RunStopped(
                            "diverged", f"training loss became {loss.item()} at step {self.step}"
                        )
                    if due is not None and not update_after_step:
                        self._topology_update(run, optimizer, due)
                    optimizer.step()
                    if due is not None and update_after_step:
                        self._topology_update(run, optimizer, due)
                    if due is not None:
                        self._check_invariants()
                    loss_sum.add_(loss.detach(), alpha=yb.shape[0])
                    correct.add_(self._correct(out.detach(), yb, setup.binary))
                    seen += yb.shape[0]
                train_loss = float(loss_sum) / max(seen, 1)
                if not math.isfinite(train_loss):
                    raise RunStopped(
                        "diverged", f"training loss became {train_loss} in epoch {epoch}"
                    )
                scheduler.step()
                val_loss = val_acc = None
                if setup.val is not None:
                    val_loss, val_acc = self._evaluate(model, setup.val, setup.binary)
                    if val_acc > best_val:
                        best_val, best_epoch = val_acc, epoch
                        best_state = _snapshot(model, best_state)
                stats = EpochStats(
                    epoch=epoch,
                    train_loss=train_loss,
                    train_accuracy=int(correct) / max(seen, 1),
                    val_loss=val_loss,
                    val_accuracy=val_acc,
                    lr=float(optimizer.param_groups[0]["lr"]),
                    prune_fraction=fraction,
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
                            "val_accuracy": val_acc,
                        }
                    )
            if self.masker is not None:
                self._check_invariants()
            record["status"] = "ok"
        except RunStopped as stop:
            record["status"] = stop.status
            record["reason"] = stop.reason
        self.timings["train_seconds"] = (
            time.perf_counter() - train_started - self.timings["eval_seconds"]
        )
        self.timings["steps"] = self.step
        self.timings["seconds_per_step"] = self.timings["train_seconds"] / max(self.step, 1)

        metrics = record["metrics"]
        metrics["final_train_loss"] = self.curve[-1]["train_loss"] if self.curve else None
        metrics["curve"] = self.curve
        if record["status"] == "ok":
            test_loss, test_acc = self._evaluate(model, setup.test, setup.binary)
            metrics.update(test_accuracy=test_acc, test_loss=test_loss)
            if best_state is not None:
                final_state = _snapshot(model, None)
                model.load_state_dict(best_state)
                _, best_test = self._evaluate(model, setup.test, setup.binary)
                model.load_state_dict(final_state)
                metrics.update(
                    best_val_test_accuracy=best_test,
                    best_val_accuracy=best_val,
                    best_val_epoch=best_epoch,
                )
        self._fill_density(record, setup.macs)
        record["topology"] = {
            "updates": len(self.updates),
            "pruned": sum(u["pruned"] for u in self.updates),
            "grown": sum(u["grown"] for u in self.updates),
            "per_update": self.updates,
        }
        if self.overlaps:
            record["analysis"] = {"overlap": self.overlaps}
        if setup.parts.notes:
            record["data_notes"] = setup.parts.notes

    def _fill_density(self, record: dict[str, Any], macs: Mapping[str, int]) -> None:
        density = record["density"]
        if self.masker is None:
            density.update(achieved=1.0, layers={})
            record["metrics"]["dense_macs_per_sample"] = sum(macs.values())
            record["metrics"]["sparse_macs_per_sample"] = sum(macs.values())
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
        sparse_names = set(per_layer)
        record["metrics"]["dense_macs_per_sample"] = sum(macs.values())
        record["metrics"]["sparse_macs_per_sample"] = round(
            sum(m * per_layer.get(name, 1.0) for name, m in macs.items() if name in sparse_names)
            + sum(m for name, m in macs.items() if name not in sparse_names)
        )


def _snapshot(model: nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Copy the model's state into reused buffers (allocated on first use)."""
    state = model.state_dict()
    if into is None:
        return {k: v.detach().clone() for k, v in state.items()}
    for key, value in state.items():
        into[key].copy_(value)
    return into


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
    run_id = spec_hash(normalized)
    record = new_record(normalized, run_id)
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
        record["error"] = {
            "type": type(exc).__name__,
            "message": str(exc),
            "user_error": isinstance(exc, DstbenchError),
            "traceback": traceback.format_exc(),
        }
    record["timings"] = {**trainer.timings, "total_seconds": time.perf_counter() - started}
    record["provenance"] = provenance(normalized, plugins, resolved_device)
    if trainer.run is not None:
        try:
            plugins.hook.dstbench_run_end(run=trainer.run, record=record)
        except Exception as exc:  # a broken observer fails the run, visibly
            record["status"] = "failed"
            record["error"] = {
                "type": type(exc).__name__,
                "message": f"in dstbench_run_end: {exc}",
                "user_error": False,
                "traceback": traceback.format_exc(),
            }
    return record
