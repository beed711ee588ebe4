"""What a suite will cost, before it runs (``dstbench suite --dry-run``).

Per setup (model, dataset and the keys that set the amount of work: epochs, batch size,
validation split):

* **steps per run**: epochs × batches per epoch;
* **MACs per run**: forward multiply-accumulates per sample of the sparsifiable layers
  × samples seen (steps × batch size), dense-equivalent;
* **wall time per run**: from the finished records in the results directory, the closest
  match first: runs of the same setup, engine, method and density (mean ``total_seconds``),
  then the same work per step, engine, method and density (``seconds_per_step`` × steps), then
  the same setup whatever the engine and density (the sparse engine's time falls with
  density, so only the first two estimate it well); else (a built-in dataset whose files are
  missing) a short probe's seconds per step × steps; unknown otherwise.

Batches per epoch and MACs per sample come from a finished record of the setup when there is
one (``timings.steps / epochs``, ``dense_macs_per_sample``), else from building the dataset and
the model once (no training), else, for a built-in dataset whose files are missing, from its
known shape and size (:mod:`dstbench.datasets.sizes`); other datasets leave them unknown.
The total wall time divides the runs still to do by the number of workers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from dstbench.contracts.spec import spec_hash
from dstbench.errors import DstbenchError
from dstbench.registry import Registry
from dstbench.suite.runner import PlannedRun

#: Spec keys that, with the model and dataset, decide a run's amount of work per epoch.
_WORK_KEYS = ("model", "dataset", "batch_size", "val_fraction", "validation")


def _work_key(spec: Mapping[str, Any]) -> str:
    return spec_hash({k: spec.get(k) for k in _WORK_KEYS})


def _setup_key(spec: Mapping[str, Any]) -> str:
    work = {k: spec.get(k) for k in _WORK_KEYS}
    return spec_hash({**work, "epochs": spec.get("epochs"), "at_init": _at_init(spec)})


def _at_init(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("jaccard_at_init"))


@dataclass
class SetupCost:
    """The estimate for one setup."""

    label: str
    runs: int = 0
    to_run: int = 0
    steps_per_epoch: float | None = None
    macs_per_sample: int | None = None
    epochs: int = 0
    batch_size: int = 0
    seconds_per_run: float | None = None
    seconds_source: str = "unknown"
    #: Seconds per step timed on random inputs of the dataset's shape (data missing, no
    #: finished run): the last resort for the wall time.
    probed_seconds_per_step: float | None = None
    #: Overlap-at-initialisation runs: one forward/backward pass, no training.
    at_init: bool = False

    @property
    def steps(self) -> int | None:
        """Optimizer steps per run (one batch for an overlap-at-initialisation run)."""
        if self.at_init:
            return 1
        if self.steps_per_epoch is None:
            return None
        return round(self.steps_per_epoch * self.epochs)

    @property
    def macs_per_run(self) -> float | None:
        """Dense-equivalent forward MACs per run."""
        if self.steps is None or self.macs_per_sample is None:
            return None
        return float(self.macs_per_sample) * self.batch_size * self.steps


def _finished(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("status") == "ok" and isinstance(r.get("spec"), dict)]


def probe_work(spec: Mapping[str, Any], registry: Registry, data_root: Any) -> tuple[float, int]:
    """Batches per epoch and dense forward MACs per sample, by building data and model once.

    :raises DstbenchError: when the dataset cannot be loaded (e.g. files missing).
    """
    import torch

    from dstbench.contracts.data import DatasetContext, resolve_data_root
    from dstbench.engine.data import carve_validation
    from dstbench.engine.flops import count_macs

    info = registry.datasets[spec["dataset"]["name"]]
    context = DatasetContext(
        root=resolve_data_root(data_root), download=False, validation=spec["validation"]
    )
    parts = info.fn(context, **spec["dataset"]["params"])
    if spec["validation"] == "paper" and parts.val is not None:
        train = parts.train
    else:
        train, _ = carve_validation(parts.train, spec["val_fraction"])
    model = registry.models[spec["model"]["name"]].fn(
        parts.input_shape, parts.num_classes, **spec["model"]["params"]
    )
    sample = torch.zeros((2, *parts.input_shape))
    macs = count_macs(model, sample)
    return math.ceil(len(train) / spec["batch_size"]), sum(macs.values())


def known_work(
    spec: Mapping[str, Any], registry: Registry
) -> tuple[float, int, float | None] | None:
    """Batches per epoch, MACs per sample and seconds per step of a built-in dataset whose
    files are missing, from its known shape and size and a short probe (a few steps on random
    inputs of that shape); None for other datasets, or a model that cannot be built.
    """
    import torch

    from dstbench.datasets.sizes import BUILTIN_SIZES
    from dstbench.engine.flops import count_macs

    name = spec["dataset"]["name"]
    size = BUILTIN_SIZES.get(name)
    info = registry.datasets.get(name)
    if size is None or info is None or not info.plugin.startswith("builtin"):
        return None
    try:
        model = registry.models[spec["model"]["name"]].fn(
            size.input_shape, size.num_classes, **spec["model"]["params"]
        )
        macs = count_macs(model, torch.zeros((2, *size.input_shape)))
        seconds = probe_step_seconds(model, size.input_shape, size.num_classes, spec)
    except (DstbenchError, RuntimeError, ValueError):
        return None
    samples = size.train_samples(spec["validation"], spec["val_fraction"])
    return math.ceil(samples / spec["batch_size"]), sum(macs.values()), seconds


#: Samples per probe step (the time is scaled to the run's batch size), warm-up steps and
#: steps timed.
PROBE_BATCH, PROBE_WARMUP, PROBE_STEPS = 16, 2, 3


def probe_step_seconds(
    model: Any, input_shape: tuple[int, ...], classes: int, spec: Mapping[str, Any]
) -> float:
    """Seconds of one training step of ``model`` at the run's batch size on this machine's
    CPU, timed on random inputs (the fastest of :data:`PROBE_STEPS` after the warm-up,
    scaled from :data:`PROBE_BATCH` samples)."""
    import time

    import torch

    batch = min(PROBE_BATCH, int(spec["batch_size"]))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *input_shape), generator=generator)
    y = torch.randint(classes, (batch,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    times = []
    for _ in range(PROBE_WARMUP + PROBE_STEPS):
        started = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    # the fastest timed step: the least disturbed by whatever else this machine does
    return min(times[PROBE_WARMUP:]) * spec["batch_size"] / batch


def _engine_of(record: Mapping[str, Any]) -> str:
    return str((record.get("provenance") or {}).get("engine") or "single")


def _run_key(spec: Mapping[str, Any], engine: str) -> tuple[str, str, Any]:
    """What makes two runs of one setup cost alike: the engine, the method and the density
    (a dense run costs the same on every engine: no engine makes dense weights sparse)."""
    method = str(spec.get("method"))
    return ("" if method == "dense" else engine), method, spec.get("density")


def estimate(
    planned: Sequence[PlannedRun],
    records: Iterable[Mapping[str, Any]],
    registry: Registry,
    data_root: Any = None,
    *,
    probe: bool = True,
    engine: str = "single",
) -> list[SetupCost]:
    """One :class:`SetupCost` per setup of ``planned``, from ``records`` and probing
    (``engine``: the engine that will train the runs).

    A sparse engine's run falls back to the single engine in the cases
    :func:`dstbench.sparsetrain.engine.unsupported` names; such runs are still matched with
    the planned engine's records first, which hold them under ``single``.
    """
    finished = _finished(records)
    by_work: dict[str, list[Mapping[str, Any]]] = {}
    by_setup: dict[str, list[Mapping[str, Any]]] = {}
    for record in finished:
        by_work.setdefault(_work_key(record["spec"]), []).append(record)
        by_setup.setdefault(_setup_key(record["spec"]), []).append(record)
    costs: dict[str, SetupCost] = {}
    probed: dict[str, tuple[float, int, float | None] | None] = {}
    per_run: dict[str, list[tuple[float | None, str]]] = {}
    for item in planned:
        spec = item.cell.spec
        key = _setup_key(spec)
        cost = costs.get(key)
        if cost is None:
            label = f"{item.cell.setup} ({spec['epochs']} epochs, batch {spec['batch_size']})"
            if _at_init(spec):
                label = f"{item.cell.setup} (overlap at init: 1 batch of {spec['batch_size']})"
            cost = costs[key] = SetupCost(
                label, epochs=spec["epochs"], batch_size=spec["batch_size"], at_init=_at_init(spec)
            )
            _fill_work(cost, spec, by_work, probed, registry, data_root, probe)
        per_run.setdefault(key, []).append(
            _run_seconds(
                cost, spec, engine, by_setup.get(key, []), by_work.get(_work_key(spec), [])
            )
        )
        cost.runs += 1
        cost.to_run += int(item.will_run)
    for key, cost in costs.items():
        found = per_run[key]
        if all(seconds is not None for seconds, _ in found):
            cost.seconds_per_run = statistics.fmean(s for s, _ in found if s is not None)
            sources = [source for _, source in found]
            cost.seconds_source = max(set(sources), key=sources.count)
            if len(set(sources)) > 1:
                cost.seconds_source += " (and others)"
    return list(costs.values())


def _fill_work(
    cost: SetupCost,
    spec: Mapping[str, Any],
    by_work: Mapping[str, list[Mapping[str, Any]]],
    probed: dict[str, tuple[float, int, float | None] | None],
    registry: Registry,
    data_root: Any,
    probe: bool,
) -> None:
    for record in by_work.get(_work_key(spec), []):
        steps = (record.get("timings") or {}).get("steps")
        macs = (record.get("metrics") or {}).get("dense_macs_per_sample")
        epochs = record["spec"].get("epochs")
        if steps and epochs and macs:
            cost.steps_per_epoch = steps / epochs
            cost.macs_per_sample = int(macs)
            return
    if not probe:
        return
    work = _work_key(spec)
    if work not in probed:
        try:
            probed[work] = (*probe_work(spec, registry, data_root), None)
        except (DstbenchError, OSError, RuntimeError, ValueError):
            probed[work] = known_work(spec, registry)
    found = probed[work]
    if found is not None:
        cost.steps_per_epoch, cost.macs_per_sample, cost.probed_seconds_per_step = found


def _timing(records: Iterable[Mapping[str, Any]], name: str) -> list[float]:
    return [r["timings"][name] for r in records if (r.get("timings") or {}).get(name)]


def _run_seconds(
    cost: SetupCost,
    spec: Mapping[str, Any],
    engine: str,
    same_setup: Sequence[Mapping[str, Any]],
    same_work: Sequence[Mapping[str, Any]],
) -> tuple[float | None, str]:
    """One planned run's wall time and where it comes from (the closest records first)."""
    wanted = _run_key(spec, engine)
    alike = [r for r in same_setup if _run_key(r["spec"], _engine_of(r)) == wanted]
    totals = _timing(alike, "total_seconds")
    if totals:
        return statistics.fmean(totals), f"finished runs alike ({engine} engine)"
    per_step = _timing(
        (r for r in same_work if _run_key(r["spec"], _engine_of(r)) == wanted),
        "seconds_per_step",
    )
    if per_step and cost.steps is not None:
        return statistics.fmean(per_step) * cost.steps, f"s/step of runs alike ({engine}) × steps"
    totals = _timing(same_setup, "total_seconds")
    if totals:
        return statistics.fmean(totals), "finished runs of the setup (any engine, density)"
    per_step = _timing(same_work, "seconds_per_step")
    if per_step and cost.steps is not None:
        return statistics.fmean(per_step) * cost.steps, "s/step of the setup's runs × steps"
    if cost.probed_seconds_per_step is not None and cost.steps is not None:
        return (
            cost.probed_seconds_per_step * cost.steps,
            "a probe: steps on random inputs here (CPU), × steps",
        )
    return None, "unknown"


def _engineering(value: float | None) -> str:
    if value is None:
        return "unknown"
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12.3s`` or unknown."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def cost_text(costs: Sequence[SetupCost], workers: int) -> str:
    """The estimate as a table and a total line."""
    rows = []
    total = 0.0
    unknown = 0
    for cost in costs:
        macs = cost.macs_per_run
        rows.append(
            [
                cost.label,
                cost.runs,
                cost.to_run,
                cost.steps if cost.steps is not None else "unknown",
                _engineering(macs),
                duration(cost.seconds_per_run),
                cost.seconds_source,
            ]
        )
        if cost.to_run:
            if cost.seconds_per_run is None:
                unknown += cost.to_run
            else:
                total += cost.seconds_per_run * cost.to_run
    headers = [
        "setup",
        "runs",
        "to run",
        "steps/run",
        "MACs/run (dense fwd)",
        "wall/run",
        "wall time from",
    ]
    table = tabulate(rows, headers=headers, disable_numparse=True)
    known = duration(total / max(workers, 1)) if total or not unknown else "unknown"
    line = f"estimated wall time of the runs to do: {known} with {workers} worker(s)"
    if unknown:
        line += f" (+ {unknown} run(s) of unknown duration: no finished run of their setup)"
    return f"{table}\n\n{line}"


def seconds_alike(
    specs: Sequence[Mapping[str, Any]], records: Iterable[Mapping[str, Any]], engine: str
) -> list[float | None]:
    """Each spec's wall time from the finished ``records`` alone, as :func:`estimate`'s first
    and third sources: runs of the same setup, engine, method and density, else of the same
    setup whatever the engine and density; None where no finished run of its setup exists.

    Nothing is built or probed, so an executor may call it to plan a submission.
    """
    by_setup: dict[str, list[Mapping[str, Any]]] = {}
    for record in _finished(records):
        by_setup.setdefault(_setup_key(record["spec"]), []).append(record)
    seconds: list[float | None] = []
    for spec in specs:
        same_setup = by_setup.get(_setup_key(spec), [])
        wanted = _run_key(spec, engine)
        alike = [r for r in same_setup if _run_key(r["spec"], _engine_of(r)) == wanted]
        totals = _timing(alike, "total_seconds") or _timing(same_setup, "total_seconds")
        seconds.append(statistics.fmean(totals) if totals else None)
    return seconds
