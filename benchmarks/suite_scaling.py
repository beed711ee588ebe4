"""Suite throughput with 2 local workers vs 1, on the same set of small runs.

    python benchmarks/suite_scaling.py [--runs 48] [--epochs 15]

Both configurations run the same suite (MLP on digits, no download) from scratch, each worker
with one CPU thread, so the ratio measures process-level parallelism alone: tiny models gain
nothing from intra-op threads, and a 2-thread single worker would only be slowed by OpenMP
contention. Wall time includes starting the workers. The last line is the ratio (ideal: 2x
on 2 free cores; timings taken on a machine shared with other work are noisy).
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

from dstbench.plugins import get_plugins
from dstbench.suite import run_suite
from dstbench.suite.executors import available_cpus
from dstbench.suite.loader import build_suite


def make_suite(runs: int, epochs: int):
    criteria = ["magnitude", "set", "mest", "snip", "rsensitivity", "random"]
    densities = [0.05, 0.1]
    seeds = list(range(max(1, runs // (len(criteria) * len(densities)))))
    data = {
        "name": "scaling",
        "model": "mlp",
        "dataset": "digits",
        "epochs": epochs,
        "update_period": 20,
        "densities": densities,
        "criteria": criteria,
        "growth": "gradient",
        "seeds": seeds,
    }
    return build_suite(data, get_plugins().registry, path=Path("scaling.toml"))


def timed(suite, workers: int, root: Path) -> float:
    started = time.perf_counter()
    outcome = run_suite(
        suite,
        output=root / f"j{workers}",
        workers=workers,
        device="cpu",
        executor={"name": "local", "params": {"threads": 1}},
        stream=io.StringIO(),
        live=False,
    )
    seconds = time.perf_counter() - started
    assert outcome.counts() == {"ok": len(suite.cells)}, outcome.counts()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=48, help="runs in the suite (default 48)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per run (default 15)")
    args = parser.parse_args()
    suite = make_suite(args.runs, args.epochs)
    runs = len(suite.cells)
    print(f"suite: {runs} runs of MLP/digits, {args.epochs} epochs each; {available_cpus()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        one = timed(suite, 1, Path(tmp))
        two = timed(suite, 2, Path(tmp))
    print(f"1 worker : {one:6.2f} s  ({runs / one:5.2f} runs/s)")
    print(f"2 workers: {two:6.2f} s  ({runs / two:5.2f} runs/s)")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"throughput 2 workers / 1 worker: {one / two:.2f}x")


if __name__ == "__main__":
    main()
