"""What the sparse engine saves: its training step against dense training and against the
single engine's masked DST, side by side in one process, at several densities.

MLP-CIFAR on random CIFAR-shaped data, batch 128, magnitude pruning with gradient growth,
ΔT = 100 (topology updates included, amortized: each run trains ``--iterations`` iterations,
200 by default, so two updates), one thread. For every density three kinds of run train in
lockstep with one dense run: dense (single engine), masked DST (single engine) and sparse DST
(sparse engine). They take turns one iteration at a time and only the run whose turn it is
computes (the lockstep plugin of ``step_overhead.py``, which explains the method), so the
ratios hold on a noisy machine even though absolute times do not.

    python benchmarks/sparse_speed.py                        # about four minutes on 2 cores
    python benchmarks/sparse_speed.py --densities 0.05 0.3 --iterations 100

Printed per density: the sparse engine's median iteration, its ratio to the dense run's and
to the masked run's (updates included), the masked run's ratio to dense, and one update's
cost; then the break-even density (where the sparse/dense ratio reaches 1, interpolated
between measured densities, or extrapolated from the two densest when none reaches it). The
last line is the d = 0.05 sparse/dense ratio. On a CPU only the ratios mean something.
"""

from __future__ import annotations

import argparse
import itertools
import math
import threading
import time
from dataclasses import dataclass

import torch
from step_overhead import EPOCH_ITERATIONS, Lockstep, RandomCifar, Result, _pin, _summarize

import dstbench
from dstbench.plugins import load_plugins

MODEL = "mlp_cifar"
BATCH = 128
PERIOD = 100


@dataclass(frozen=True)
class Run:
    """One run of the lockstep group."""

    label: str
    method: str
    engine: str
    density: float


def _spec(run: Run, iterations: int, data_seed: int) -> dict:
    per_epoch = math.gcd(iterations, EPOCH_ITERATIONS)
    return {
        "model": MODEL,
        "dataset": f"random_cifar[samples={per_epoch * BATCH},seed={data_seed}]",
        "method": run.method,
        "criterion": "magnitude",
        "growth": "gradient",
        "density": run.density,
        "update_period": PERIOD,
        "epochs": iterations // per_epoch,
        "batch_size": BATCH,
        "val_fraction": 0.0,
        "seed": 0,
    }


def run_group(runs: list[Run], iterations: int) -> tuple[dict[str, Result], dict[str, dict]]:
    """Train every run in lockstep; each one's figures against the dense run (the first)."""
    lockstep = Lockstep([r.label for r in runs])
    plugins = load_plugins(
        extra=[("random-cifar", RandomCifar()), ("lockstep", lockstep)],
        env={"DSTBENCH_LOAD_PLUGINS": "random-cifar,lockstep"},
    )
    records: dict[str, dict] = {}

    def train(run: Run, index: int) -> None:
        lockstep.bind(run.label)
        records[run.label] = dstbench.execute(
            _spec(run, iterations, index), plugins=plugins, device="cpu", engine=run.engine
        )

    threads = []
    for index, run in enumerate(runs):
        # One setup at a time: model initialisation seeds torch's global generator.
        thread = threading.Thread(target=train, args=(run, index), name=run.label)
        thread.start()
        threads.append(thread)
        while thread.is_alive() and not lockstep.joined(run.label):
            time.sleep(0.01)
        if not thread.is_alive():
            lockstep.abort()
    for thread in threads:
        thread.join()
    for run in runs:
        record = records.get(run.label, {})
        if record.get("status") != "ok":
            msg = f"{run.label} run failed: {record.get('error') or record.get('reason')}"
            raise SystemExit(msg)
        if record["provenance"]["engine"] != run.engine:
            raise SystemExit(f"{run.label}: trained by {record['provenance']['engine']}")
    dense = lockstep.times[runs[0].label]
    results = {}
    for run in runs:
        record = records[run.label]
        updates = int(record["topology"]["updates"])
        results[run.label] = _summarize(lockstep.times[run.label], dense, record, updates)
    return results, records


def break_even(densities: list[float], ratios: list[float]) -> tuple[float, str]:
    """The density where the sparse/dense ratio reaches 1: interpolated between the measured
    densities that bracket it, else extrapolated linearly from the two densest."""
    points = sorted(zip(densities, ratios, strict=True))
    for (d0, r0), (d1, r1) in itertools.pairwise(points):
        if r0 <= 1.0 <= r1 and r1 != r0:
            return d0 + (1.0 - r0) * (d1 - d0) / (r1 - r0), "interpolated"
    if len(points) >= 2:
        (d0, r0), (d1, r1) = points[-2], points[-1]
        if r1 > r0:
            return d1 + (1.0 - r1) * (d1 - d0) / (r1 - r0), "extrapolated"
    return math.nan, "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.01, 0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--iterations", type=int, default=2 * PERIOD)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (-1: no pinning)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pinned = _pin(args.cpu, 1)
    runs = [Run("dense", "dense", "single", 1.0)]
    for density in args.densities:
        runs.append(Run(f"masked d={density:g}", "dst", "single", density))
        runs.append(Run(f"sparse d={density:g}", "dst", "sparse", density))
    print(
        f"torch {torch.__version__}, 1 thread, {MODEL} batch {BATCH}, magnitude + gradient "
        f"growth, ΔT={PERIOD}, {args.iterations} iterations per run, "
        f"{f'pinned to CPU {pinned}' if pinned is not None else 'not pinned'}"
    )
    results, records = run_group(runs, args.iterations)
    kernels = {
        records[r.label].get("sparse_engine", {}).get("kernels")
        for r in runs
        if r.engine == "sparse"
    }
    print(f"sparse engine kernels: {', '.join(sorted(str(k) for k in kernels))}")
    dense = results["dense"]
    print(f"dense: {dense.ms_per_step:.2f} ms/step\n")
    print(
        f"{'density':>8} {'sparse ms':>9} {'sparse/dense':>12} {'sparse/masked':>13} "
        f"{'masked/dense':>12} {'updates':>7} {'sparse ms/update':>16}"
    )
    ratios = []
    for density in args.densities:
        sparse, masked = results[f"sparse d={density:g}"], results[f"masked d={density:g}"]
        ratios.append(sparse.ratio)
        update = f"{sparse.update_ms:16.1f}" if sparse.update_ms is not None else f"{'-':>16}"
        print(
            f"{density:8g} {sparse.ms_per_step:9.2f} {sparse.ratio:12.3f} "
            f"{sparse.ratio / masked.ratio:13.3f} {masked.ratio:12.3f} {sparse.updates:7d} "
            f"{update}"
        )
    point, how = break_even(args.densities, ratios)
    print(f"\nbreak-even density (sparse = dense): {point:.3f} ({how})")
    if 0.05 in args.densities:
        print(f"sparse/dense at d=0.05: {ratios[args.densities.index(0.05)]:.3f}")


if __name__ == "__main__":
    main()
