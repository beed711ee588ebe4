"""A run's record, assembled in one place.

While a run trains, its :class:`RunLog` collects what the record will say (status, curve,
topology updates, overlaps, timings); :func:`assemble_record` turns the log and the run's final
state into the frozen :class:`~dstbench.contracts.record.RunRecord`. Every record dstbench
writes comes from here, the ``failed`` records of runs that never trained included
(:func:`failed_record`).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from dstbench.contracts.record import RunRecord
from dstbench.contracts.spec import RunSpec
from dstbench.engine.flops import sparse_macs
from dstbench.engine.health import health_block
from dstbench.engine.spec import paper_substitutions
from dstbench.errors import DstbenchError
from dstbench.sparse.masker import Masker
from dstbench.sparse.movement import mask_movement


@dataclass
class RunLog:
    """What a run's record will say, collected while it trains."""

    #: ``failed`` until the run ends well (or is stopped with another status).
    status: str = "failed"
    reason: str | None = None
    error: dict[str, Any] | None = None
    #: One :meth:`EpochStats.as_dict` per epoch.
    curve: list[dict[str, Any]] = field(default_factory=list)
    #: One summary per topology update (counts, per layer pruned/grown).
    updates: list[dict[str, Any]] = field(default_factory=list)
    #: Pruned-set overlaps of the compared criteria, one entry per update.
    overlaps: list[dict[str, Any]] = field(default_factory=list)
    #: Test metrics and best-validation results (set after training).
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(
        default_factory=lambda: {"update_seconds": 0.0, "eval_seconds": 0.0}
    )
    #: Each sparse layer's mask before training (for the mask movement).
    initial_masks: dict[str, torch.Tensor] | None = None
    #: Extra blocks (``data_notes``, ``checkpoint`` warnings...).
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, exc: BaseException, where: str = "") -> None:
        """Record ``exc`` as the run's failure."""
        self.status = "failed"
        self.error = error_block(exc, where)


def error_block(exc: BaseException, where: str = "") -> dict[str, Any]:
    """The record's ``error`` for an exception (with its traceback)."""
    return {
        "type": type(exc).__name__,
        "message": f"{where}{exc}",
        "user_error": isinstance(exc, DstbenchError),
        "traceback": traceback.format_exc(),
    }


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


def _density(
    spec: RunSpec, masker: Masker | None, macs: Mapping[str, int] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's ``density`` block and the MAC metrics."""
    density: dict[str, Any] = {"target": spec.density}
    metrics: dict[str, Any] = {}
    if macs is None:
        return density, metrics
    metrics["dense_macs_per_sample"] = sum(macs.values())
    if masker is None:
        density.update(achieved=1.0, layers={})
        metrics["sparse_macs_per_sample"] = sum(macs.values())
        return density, metrics
    per_layer = masker.layer_densities()
    density.update(
        achieved=masker.density(),
        layers={
            layer.name: {
                "numel": layer.numel,
                "target": layer.target,
                "density": per_layer[layer.name],
            }
            for layer in masker.layers
        },
    )
    metrics["sparse_macs_per_sample"] = sparse_macs(macs, per_layer)
    return density, metrics


def assemble_record(
    spec: RunSpec,
    log: RunLog,
    *,
    masker: Masker | None = None,
    macs: Mapping[str, int] | None = None,
    num_classes: int | None = None,
    data_notes: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> RunRecord:
    """The record of a run from its log and final state.

    :param masker: the run's masks (None: a dense run, or one that never built its masks).
    :param macs: MACs per sample and layer (None: the model was never built).
    :param num_classes: the task's classes, for the health block of ``ok`` runs.
    """
    trained = log.status == "ok" and not spec.jaccard_at_init
    metrics: dict[str, Any] = {"test_accuracy": None, "best_val_test_accuracy": None}
    metrics.update(log.metrics)
    metrics["final_train_loss"] = log.curve[-1]["train_loss"] if log.curve else None
    metrics["curve"] = log.curve
    density, mac_metrics = _density(spec, masker, macs)
    metrics.update(mac_metrics)
    topology = {
        "updates": len(log.updates),
        "pruned": sum(u["pruned"] for u in log.updates),
        "grown": sum(u["grown"] for u in log.updates),
        "per_update": log.updates,
    }
    extra: dict[str, Any] = {}
    if log.overlaps:
        extra["analysis"] = {"overlap": log.overlaps}
    if masker is not None and log.initial_masks is not None:
        extra["mask_movement"] = mask_movement(log.initial_masks, masker.topology())
    if trained and num_classes is not None:
        reached = [c.get(k) for c in log.curve for k in ("train_accuracy", "val_accuracy")]
        reached.append(metrics.get("test_accuracy"))
        extra["health"] = health_block(num_classes, reached)
    if macs is not None:
        extra["fidelity"] = fidelity_block(spec)
    if data_notes:
        extra["data_notes"] = dict(data_notes)
    extra.update(log.extra)
    return RunRecord(
        run_id=spec.run_id,
        status=log.status,
        spec=spec,
        metrics=metrics,
        density=density,
        topology=topology,
        timings=log.timings,
        reason=log.reason,
        error=log.error,
        provenance=provenance,
        extra=extra,
    )


def failed_record(
    spec: RunSpec, message: str, trace: str | None = None, *, kind: str = "RunnerError"
) -> RunRecord:
    """A ``failed`` record for a run that produced none of its own (its process died, its
    worker could not build it, the scheduler killed it)."""
    log = RunLog(
        error={"type": kind, "message": message, "user_error": False, "traceback": trace or ""},
        timings={},
    )
    return assemble_record(spec, log)
