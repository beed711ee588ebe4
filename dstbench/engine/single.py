"""The built-in ``single`` engine: one run at a time, from a spec to its record.

:func:`train_run` is the whole life of a run: set up (:mod:`dstbench.engine.setup`), train
(:mod:`dstbench.engine.loop`), assemble the record (:mod:`dstbench.engine.record`). It never
raises for a failing run: the record says ``failed``, ``diverged`` or ``invalid``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch

from dstbench.contracts.execution import ExecutionOptions, Job, RunRequest
from dstbench.contracts.record import RunRecord
from dstbench.contracts.run import RunContext
from dstbench.contracts.spec import RunSpec
from dstbench.engine import checkpoint as checkpoints
from dstbench.engine.loop import (
    Progress,
    RunState,
    SingleRun,
    final_test_metrics,
)
from dstbench.engine.process import reset_process_state
from dstbench.engine.provenance import provenance
from dstbench.engine.record import RunLog, assemble_record, error_block
from dstbench.engine.resume import CheckpointMismatch
from dstbench.engine.setup import Setup, build_masker, build_optimizer, build_setup, resolve_device
from dstbench.engine.spec import build_spec
from dstbench.plugins import LoadedPlugins, get_plugins
from dstbench.resolve import lookup
from dstbench.sparse.masker import Masker

ENGINE_NAME = "single"

#: ``prepare(spec, device, data_root, download, plugins) -> (setup, masks, notes)``: how an
#: engine builds a run's data, model and masks before the optimizer is built (the sparse engine
#: swaps Linear layers for value-and-position ones); ``notes`` go into the record's ``extra``.
Prepare = Callable[
    [RunSpec, torch.device, "str | Path | None", bool, LoadedPlugins],
    tuple[Setup, Any, dict[str, Any]],
]


def prepare_masked(
    spec: RunSpec,
    device: torch.device,
    data_root: str | Path | None,
    download: bool,
    plugins: LoadedPlugins,
) -> tuple[Setup, Masker | None, dict[str, Any]]:
    """The single engine's run: a dense model and masks over its sparse weights."""
    setup = build_setup(spec, device, data_root, download)
    return setup, build_masker(spec, setup.model), {}


def train_run(
    spec: RunSpec,
    *,
    plugins: LoadedPlugins,
    device: torch.device,
    data_root: str | Path | None = None,
    download: bool = False,
    artifact_dir: Path | None = None,
    progress: Progress | None = None,
    engine: str = ENGINE_NAME,
    checkpoint: Path | None = None,
    checkpoint_every: int | None = None,
    discarded: str | None = None,
    prepare: Prepare = prepare_masked,
) -> RunRecord:
    """Train ``spec`` (built by :func:`build_spec`) and return its record.

    :param checkpoint: where the run keeps its in-run checkpoint (None: none); a run that
        finds one there resumes from it.
    :param checkpoint_every: epochs between checkpoints (0 never; None: by time).
    :param prepare: how the engine builds the data, model and masks (default: dense tensors
        and masks, :func:`prepare_masked`).
    :raises RunInterrupted: when the process is asked to stop (the run has checkpointed).
    """
    reset_process_state()  # whatever an earlier run in this process left changed
    started = time.perf_counter()
    state: RunState | None = None
    setup: Setup | None = None
    run: RunContext | None = None
    observed: RunContext | None = None  # the context observers saw start, if any
    log = None
    try:
        setup, masker, notes = prepare(spec, device, data_root, download, plugins)
        state = RunState(spec, plugins, masker)
        log = state.log
        log.extra.update(notes)
        run = RunContext(
            spec=spec,
            run_id=spec.run_id,
            model=setup.model,
            device=device,
            masker=state.masker,
            artifact_dir=artifact_dir,
        )
        optimizer = build_optimizer(spec, setup.model, state.masker)
        if hasattr(masker, "bind"):  # masks that move optimizer state themselves
            masker.bind(optimizer)
        trainer = SingleRun(
            state, setup, optimizer, run, device, progress, checkpoint, checkpoint_every
        )
        if discarded:
            log.extra["checkpoint"] = {"discarded": discarded}
        if spec.jaccard_at_init:
            trainer.overlap_at_init()
        else:
            observed = run
            plugins.hook.dstbench_run_start(run=run)
            trainer.train()
            final_test_metrics(log, setup, trainer.best, trainer.evaluate)
    except CheckpointMismatch as exc:  # start over, from scratch, without it
        if checkpoint is not None:
            checkpoints.warn_discarded(checkpoint, f"does not fit the run ({exc})")
        checkpoints.remove(checkpoint)
        return train_run(
            spec,
            plugins=plugins,
            device=device,
            data_root=data_root,
            download=download,
            artifact_dir=artifact_dir,
            progress=progress,
            engine=engine,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            discarded=f"does not fit the run ({exc})",
            prepare=prepare,
        )
    except Exception as exc:  # any failure is recorded; the caller decides what to do next
        if log is None:
            log = RunLog()
        log.fail(exc)
    log.timings["total_seconds"] = time.perf_counter() - started
    record = assemble_record(
        spec,
        log,
        masker=state.masker if state else None,
        macs=setup.macs if setup else None,
        num_classes=setup.parts.num_classes if setup else None,
        data_notes=setup.parts.notes if setup else None,
        provenance=provenance(spec, plugins, device, engine),
    )
    return end_run(plugins, observed, record)


def end_run(plugins: LoadedPlugins, run: RunContext | None, record: RunRecord) -> RunRecord:
    """Call the ``dstbench_run_end`` observers; a broken one fails the run, visibly."""
    if run is None:
        return record
    try:
        plugins.hook.dstbench_run_end(run=run, record=record.to_json())
    except Exception as exc:
        return replace(record, status="failed", error=error_block(exc, "in dstbench_run_end: "))
    return record


def execute(
    spec: Mapping[str, Any],
    *,
    plugins: LoadedPlugins | None = None,
    device: str | torch.device | None = "cpu",
    data_root: str | Path | None = None,
    download: bool = False,
    artifact_dir: Path | None = None,
    progress: Progress | None = None,
    engine: str = ENGINE_NAME,
) -> dict[str, Any]:
    """Train one run and return its result record's JSON form (never raises for a failing run).

    :param spec: run-spec keys (raw, normalized, or a :class:`RunSpec`).
    :param device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
    :param data_root: data directory (default: ``$DSTBENCH_DATA`` or the user cache).
    :param download: allow datasets to download missing files.
    :param artifact_dir: a directory observers may write into.
    :param progress: called after every epoch with ``{"epoch", "epochs", ...}``.
    :param engine: the registered engine that trains it (``single``, ``sparse``, ...).
    :raises SpecError: when the spec is invalid, or the engine unknown (before anything runs).
    :returns: the record: ``status`` is ``ok``, ``failed`` (with ``error``), ``diverged`` or
        ``invalid`` (with ``reason``).
    """
    plugins = plugins or get_plugins()
    built = build_spec(spec, plugins.registry)
    if engine != ENGINE_NAME:
        return _execute_with(engine, built, plugins, device, data_root, download, artifact_dir)
    record = train_run(
        built,
        plugins=plugins,
        device=resolve_device(device),
        data_root=data_root,
        download=download,
        artifact_dir=artifact_dir,
        progress=progress,
    )
    return record.to_json()


def _execute_with(
    engine: str,
    spec: RunSpec,
    plugins: LoadedPlugins,
    device: str | torch.device | None,
    data_root: str | Path | None,
    download: bool,
    artifact_dir: Path | None,
) -> dict[str, Any]:
    """One run trained by the registered engine ``engine`` (as a group of one)."""
    trainer = lookup("engine", engine, plugins.registry, key="engine").fn()
    options = ExecutionOptions(
        workers=1,
        device=str(resolve_device(device)),
        data_root=str(data_root) if data_root is not None else None,
        download=download,
        engine=engine,
    )
    request = RunRequest(spec=spec, device=options.device, artifact_dir=artifact_dir)
    (record,) = trainer.run([request], options, plugins)
    return cast(RunRecord, record).to_json()


def epoch_progress(request: RunRequest) -> Callable[[dict[str, Any]], None] | None:
    """The loop's progress callback for a request's ``progress(epoch, epochs)``."""
    callback = request.progress
    if callback is None:
        return None
    return lambda info: callback(int(info["epoch"]), int(info["epochs"]))


class SingleEngine:
    """One run at a time, in request order."""

    def groups(self, jobs: Sequence[Job], size: int, workers: int = 1) -> list[list[Job]]:
        """One group per job: nothing is trained together."""
        return [[job] for job in jobs]

    def run(
        self, requests: Sequence[RunRequest], options: ExecutionOptions, plugins: LoadedPlugins
    ) -> Iterator[RunRecord]:
        """Train each request and yield its record."""
        for request in requests:
            yield train_run(
                build_spec(request.spec, plugins.registry),
                plugins=plugins,
                device=resolve_device(request.device),
                data_root=options.data_root,
                download=options.download,
                artifact_dir=request.artifact_dir,
                progress=epoch_progress(request),
                checkpoint=request.checkpoint,
                checkpoint_every=options.checkpoint_every,
            )
