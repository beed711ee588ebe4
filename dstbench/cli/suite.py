"""``dstbench suite``: run a suite file's matrix in parallel, resumably; or preview it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from dstbench.cli import warn_plugin_failures
from dstbench.cli.commands import COMMANDS
from dstbench.contracts.spec import RunSpec, format_component
from dstbench.engine.spec import FIELDS
from dstbench.errors import SpecError, SuiteError
from dstbench.labels import value_text
from dstbench.leaderboard import write_leaderboard
from dstbench.plugins import get_plugins
from dstbench.preflight import check_data, dataset_references
from dstbench.registry import Registry
from dstbench.resolve import lookup, resolve_component
from dstbench.suite.cost import cost_text, estimate
from dstbench.suite.executors import Job, make_executor
from dstbench.suite.loader import Suite, TooManyRuns, load_suite
from dstbench.suite.runner import (
    RETRYABLE,
    STATUS_WORDS,
    PlannedRun,
    counts_text,
    default_workers,
    plan,
    run_suite,
    summary_lines,
)
from dstbench.suite.store import RunStore

NAME = "suite"
HELP = COMMANDS["suite"].help

_SHOWN = ("model", "dataset", "method", "criterion", "growth", "density", "seed")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


#: The most runs a suite may have unless ``--max-runs`` says more: expanding a grid costs
#: memory per run (a million runs take gigabytes before the first one trains).
MAX_RUNS = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite file, parallelism, preview and execution options."""
    parser.add_argument("file", metavar="FILE", help="suite file, e.g. suites/quick.toml")
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help="runs in parallel (default: the suite's `jobs`, else one per CPU, or per GPU)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the run matrix with each run's status (done, failed, to run) and stop",
    )
    parser.add_argument(
        "--max-runs",
        type=_positive,
        default=MAX_RUNS,
        metavar="N",
        help=f"refuse a suite of more runs than this (default: {MAX_RUNS:,})",
    )
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="DIR",
        help="results directory (default: results/<suite name>)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda (GPUs shared round-robin between workers) or cuda:N (default: auto)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="data directory (default: the suite's data_root, else $DSTBENCH_DATA, else "
        "~/.cache/dstbench/data)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="let datasets download missing files, once, before the first run (suite: download)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop a run that takes longer and record it as failed (suite: timeout; "
        "default: no limit)",
    )
    parser.add_argument(
        "--executor",
        default=None,
        metavar="NAME[k=v]",
        help="executor overriding the suite's (default: the suite's, else 'local')",
    )
    parser.add_argument(
        "--detach",
        action="store_true",
        help="submit the runs to the executor's scheduler and return at once (slurm); "
        "`dstbench status FILE` follows them",
    )
    parser.add_argument(
        "--engine",
        default=None,
        metavar="NAME",
        help="training engine (see `dstbench plugins`): single, one run at a time per worker; "
        "batched, compatible runs trained together in one process; sparse, Linear layers held "
        "as their active weights, so time and memory fall with density (default: the suite's "
        "`engine`, else single)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=_non_negative,
        default=None,
        metavar="N",
        help="checkpoint each run every N epochs (0: never; default: the suite's "
        "`checkpoint_every`, else every epoch on slurm/dask and every 5 minutes locally); "
        "an interrupted run resumes from its checkpoint",
    )
    parser.add_argument(
        "--group",
        type=_non_negative,
        default=None,
        metavar="K",
        help="runs per batched group (default: the suite's `group`, else 0: one group per worker)",
    )
    parser.add_argument(
        "--retry",
        action="append",
        choices=RETRYABLE,
        default=[],
        help="also run again the runs that ended with this status (failed runs always "
        "run again); repeat for several",
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "live", "plain"),
        default="auto",
        help="live status line (terminals) or plain lines (logs); default: auto",
    )
    parser.add_argument(
        "--no-leaderboard", action="store_true", help="do not write the leaderboard at the end"
    )


def _executor(ref: str | None, registry: Registry) -> dict[str, Any] | None:
    if ref is None:
        return None
    try:
        return resolve_component(ref, "executor", registry, key="--executor").to_json()
    except SpecError as exc:
        raise SuiteError(str(exc)) from None


def _engine(name: str | None, registry: Registry) -> str | None:
    if name is None:
        return None
    try:
        return lookup("engine", name, registry, key="--engine").name
    except SpecError as exc:
        raise SuiteError(str(exc)) from None


def matrix_text(suite: Suite, planned: Sequence[PlannedRun]) -> str:
    """The run matrix as a table: status, id and what varies."""
    specs = [p.cell.spec for p in planned]
    extra = [
        key
        for key in FIELDS
        if key not in _SHOWN
        and len({repr(s.get(key)) for s in specs if s.get(key) is not None}) > 1
    ]
    rows = []
    for index, item in enumerate(planned, 1):
        spec = item.cell.spec
        status = STATUS_WORDS[item.status]
        if item.will_run and item.status not in ("missing", "failed"):
            status += " (retry)"
        rows.append(
            [
                index,
                status,
                item.cell.run_id,
                item.cell.setup,
                spec["method"],
                format_component(spec["criterion"]),
                format_component(spec["growth"]),
                f"{spec['density']:g}",
                spec["seed"],
                *(value_text(spec.get(k)) for k in extra),
            ]
        )
    headers = ["#", "status", "run id", "setup", "method", "criterion", "growth", "density"]
    return tabulate(rows, headers=[*headers, "seed", *extra], disable_numparse=True)


#: A preview lists at most this many runs; a larger grid is summarised.
DRY_RUN_LIMIT = 10_000


def run(args: argparse.Namespace) -> int:
    """Validate the suite, then preview it (``--dry-run``) or run what is left of it."""
    warn_plugin_failures()
    registry = get_plugins().registry
    try:
        suite = load_suite(
            args.file, registry, max_runs=DRY_RUN_LIMIT if args.dry_run else args.max_runs
        )
    except TooManyRuns as big:
        if not args.dry_run:
            msg = (
                f"{args.file}: suite {big.name!r} has up to {big.runs:,} runs, more than "
                f"--max-runs {args.max_runs:,}; preview it with --dry-run, or raise --max-runs"
            )
            raise SuiteError(msg) from None
        print(
            f"suite {big.name}: up to {big.runs:,} runs, too many to list (the limit is "
            f"{DRY_RUN_LIMIT:,}); by setup:"
        )
        for line in big.setups:
            print(f"  {line}")
        return 0
    executor = _executor(args.executor, registry)
    for warning in suite.warnings:
        sys.stderr.write(f"dstbench: warning: {warning}\n")
    output = Path(args.output) if args.output is not None else suite.default_output()
    if output.exists() and not output.is_dir():
        msg = f"--output {output}: exists and is not a directory; expected a results folder"
        raise SuiteError(msg)
    if args.dry_run:
        planned = plan(suite, RunStore(output), args.retry)
        print(matrix_text(suite, planned))
        counts: dict[str, int] = {}
        for item in planned:
            counts[item.status] = counts.get(item.status, 0) + 1
        will_run = sum(p.will_run for p in planned)
        print()
        for line in data_lines(suite, registry, args):
            print(line)
        store = RunStore(output)
        untrusted = {path for path, _ in store.untrusted()}
        records = [r for p, r in store.records() if r is not None and p not in untrusted]
        engine = _engine(args.engine, registry) or suite.engine
        costs = estimate(planned, records, registry, args.data_root, engine=engine)
        workers = args.jobs or suite.jobs or default_workers(args.device)
        shape = _submission_shape(executor or suite.executor, planned, output, engine, registry)
        if shape is not None:
            line, tasks = shape
            print(f"\n{line}")
            workers = max(tasks, 1)  # on a scheduler, -j means nothing: the tasks run at once
        print("\ncompute (per setup):\n" + cost_text(costs, workers) + "\n")
        print(
            f"suite {suite.name}: {len(planned)} runs: {counts_text(counts)}; "
            f"{will_run} would run (results in {output})"
        )
        return 0
    live = {"auto": None, "live": True, "plain": False}[args.progress]
    outcome = run_suite(
        suite,
        output=output,
        workers=args.jobs,
        device=args.device,
        data_root=args.data_root,
        download=args.download,
        executor=executor,
        engine=_engine(args.engine, registry),
        group=args.group,
        checkpoint=args.checkpoint_every,
        retry=args.retry,
        timeout=args.timeout,
        detach=args.detach,
        stream=sys.stdout,
        live=live,
        publish=None if args.no_leaderboard else write_leaderboard,
        registry=registry,
    )
    for line in summary_lines(outcome):
        print(line)
    return outcome.exit_code


def _submission_shape(
    executor: dict[str, Any],
    planned: Sequence[PlannedRun],
    output: Path,
    engine: str,
    registry: Registry,
) -> tuple[str, int] | None:
    """The line the ``slurm`` executor would print about its array (how many tasks, how many
    runs each, why) and the number of tasks; None for other executors."""
    if executor["name"] != "slurm":
        return None
    try:
        built = make_executor(executor, registry)
    except SuiteError as exc:  # e.g. no sbatch on this machine: say so, preview the rest
        return f"slurm: the array's shape is unknown here ({exc})", 0
    packs = getattr(built, "packs", None)
    if not callable(packs):
        return None
    jobs = [
        Job(
            p.cell.run_id,
            RunSpec.from_json(p.cell.spec),
            str(output / "runs" / f"{p.cell.run_id}.json"),
            p.cell.label,
        )
        for p in planned
        if p.will_run
    ]
    chosen, line = packs(jobs, output.resolve(), engine)
    return line, len(chosen)


def data_lines(suite: Suite, registry: Registry, args: argparse.Namespace) -> list[str]:
    """``data: mlp/digits: available`` per setup (the preview's data check; no download)."""
    data_root = args.data_root if args.data_root is not None else suite.data_root
    by_setup: dict[str, list[dict[str, Any]]] = {}
    for cell in suite.cells:
        by_setup.setdefault(cell.setup, []).append(cell.spec)
    lines = []
    checked: dict[str, str | None] = {}
    for setup, specs in by_setup.items():
        for ref in dataset_references(specs):
            key = format_component(ref["dataset"])
            if key not in checked:
                [result] = check_data([ref], registry, data_root=data_root, download=False)
                checked[key] = result.problem
            problem = checked[key]
            lines.append(f"data: {setup}: {'available' if problem is None else problem}")
    return lines
