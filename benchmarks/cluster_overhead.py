"""Per-run overhead of the executors on tiny runs, side by side in one invocation.

    python benchmarks/cluster_overhead.py                  # 8 runs, 2 workers, 3 rounds: ~3 min
    python benchmarks/cluster_overhead.py --runs 16 -j 4 --dask-address tcp://head:8786

The same suite of ``--runs`` tiny runs (an MLP with one hidden layer of 32 units on digits,
``--epochs`` epochs, no download) runs from scratch through each executor, every run with one
CPU thread:

1. ``local``: ``-j`` worker processes on this machine; wall time includes starting them.
2. ``dask``: a ``LocalCluster`` of ``-j`` single-threaded workers started here beforehand (its
   start-up time is printed apart, not counted), or the scheduler at ``--dask-address``. Each
   run is a task; the runs of one suite on one worker share a run server (one Python process,
   started with the suite's first run there, as a local worker is).
3. ``slurm``, when submitit is installed, ``sbatch`` is on PATH and ``sinfo`` shows a usable
   node (else a line says why it is skipped): one job array through the real scheduler, with
   the executor and parameters of ``--slurm`` (``poll=1``: the driver looks every second; the
   default pack is automatic, one task per slot of the partition, each training its share of
   the runs in one process; ``slurm[poll=1,time=10,pack=1]`` gives one task per run).

The executors take turns for ``--rounds`` rounds and the median round of each is reported.
For each it prints the wall time of the suite, the wall time per run (wall / runs) and its
ratio to ``local``; the mean training time per run (from the records' timings) says how much
of that is the runs themselves. On a machine shared with other work only the ratios mean
something, and even they move with the load (the load average is printed).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

from dstbench.engine.spec import parse_component
from dstbench.errors import DstbenchError
from dstbench.plugins import get_plugins
from dstbench.suite import run_suite
from dstbench.suite.loader import Suite, build_suite
from dstbench.suite.store import RunStore


def make_suite(runs: int, epochs: int) -> Suite:
    """``runs`` tiny digits runs (seeds of one magnitude/random cell at density 0.1)."""
    data = {
        "name": "overhead",
        "model": "mlp[hidden=[32]]",
        "dataset": "digits",
        "epochs": epochs,
        "densities": [0.1],
        "criteria": ["magnitude"],
        "growth": ["random"],
        "seeds": list(range(runs)),
    }
    return build_suite(data, get_plugins().registry, path=Path("overhead.toml"))


def timed(suite: Suite, executor: dict[str, Any], workers: int, root: Path) -> tuple[float, float]:
    """Wall seconds of the suite through ``executor`` and the mean training seconds per run."""
    started = time.perf_counter()
    outcome = run_suite(
        suite,
        output=root,
        workers=workers,
        device="cpu",
        executor=executor,
        stream=io.StringIO(),
        live=False,
    )
    wall = time.perf_counter() - started
    assert outcome.counts() == {"ok": len(suite.cells)}, outcome.counts()
    store = RunStore(root)
    seconds = [store.load(c.run_id)["timings"]["total_seconds"] for c in suite.cells]
    return wall, sum(seconds) / len(seconds)


def executor_ref(text: str) -> dict[str, Any]:
    """``slurm[poll=1]`` -> ``{"name": "slurm", "params": {...}}`` checked by the registry."""
    name, params = parse_component(text, "--slurm")
    info = get_plugins().registry.executors[name]
    return {"name": name, "params": info.resolve_params(params)}


def slurm_missing() -> str | None:
    """Why the SLURM column is skipped, or None when it can run."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install 'dstbench[slurm]')"
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.split()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the SLURM cluster does not answer ({type(exc).__name__})"
    if not any(state.rstrip("*~#") in ("idle", "mix", "alloc") for state in states):
        return f"the SLURM cluster has no usable node (sinfo says {states})"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per executor (default 8)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over the executors, in turn (default 3)"
    )
    parser.add_argument(
        "--dask-address", default="", help="a running scheduler (default: a LocalCluster here)"
    )
    parser.add_argument(
        "--slurm", default="slurm[poll=1,time=10]", help="the SLURM executor and its parameters"
    )
    parser.add_argument("--no-dask", action="store_true", help="leave out the dask executor")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    suite = make_suite(args.runs, args.epochs)
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(
        f"{args.runs} runs of mlp[hidden=[32]] on digits, {args.epochs} epochs, "
        f"{args.jobs} workers, 1 thread per run, {args.rounds} rounds (medians)"
    )
    executors: dict[str, dict[str, Any]] = {"local": {"name": "local", "params": {"threads": 1}}}
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if not args.no_dask:
            address = dask_address(args, stack, notes)
            if address:
                executors["dask"] = {"name": "dask", "params": {"address": address, "threads": 1}}
        why = slurm_missing()
        if why is None:
            executors["slurm"] = executor_ref(args.slurm)
        else:
            notes.append(f"slurm: skipped, {why}")
        # The executors take turns, round after round, so that a change in the machine's
        # load weighs on each alike; the median round is reported.
        walls: dict[str, list[float]] = {name: [] for name in executors}
        trains: dict[str, list[float]] = {name: [] for name in executors}
        for round_ in range(args.rounds):
            for name, executor in list(executors.items()):
                try:
                    wall, train = timed(suite, executor, args.jobs, root / f"{name}-{round_}")
                except DstbenchError as exc:  # sbatch refused: say so, keep the others
                    notes.append(f"{name}: failed, {exc}")
                    del executors[name]
                    continue
                walls[name].append(wall)
                trains[name].append(train)

    results = [(n, statistics.median(walls[n]), statistics.median(trains[n])) for n in executors]
    base = results[0][1] / args.runs
    rows = [
        [name, f"{wall:.1f}", f"{wall / args.runs:.2f}", f"{wall / args.runs / base:.2f}x",
         f"{train:.2f}"]
        for name, wall, train in results
    ]  # fmt: skip
    headers = ["executor", "wall s", "s per run", "vs local", "train s per run (records)"]
    print(tabulate(rows, headers=headers, disable_numparse=True))
    for note in notes:
        print(note)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def dask_address(args: argparse.Namespace, stack: contextlib.ExitStack, notes: list[str]) -> str:
    """The scheduler for the ``dask`` column: ``--dask-address``, or a ``LocalCluster`` of
    ``-j`` workers started here (closed with ``stack``); empty when dask is missing."""
    try:
        import distributed  # noqa: F401

        from dstbench.suite.dask_executor import local_cluster
    except ImportError:
        notes.append("dask: skipped, dask.distributed is not installed")
        return ""
    if args.dask_address:
        return str(args.dask_address)
    started = time.perf_counter()
    cluster = stack.enter_context(local_cluster(args.jobs))  # 127.0.0.1, no dashboard
    notes.append(
        f"dask: a LocalCluster of {args.jobs} workers, started in "
        f"{time.perf_counter() - started:.1f} s (not counted)"
    )
    return str(cluster.scheduler_address)


if __name__ == "__main__":
    main()
