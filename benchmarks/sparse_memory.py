"""Memory that grows with the active weights, not the dense size: the sparse engine trains an
MLP whose hidden layer could not exist densely on this machine.

The model is 64 -> 100,000 -> 100,000 -> 10 (``mlp[hidden=[100000, 100000]]``) on scikit-
learn's digits: the middle layer has 10^10 positions, 40 GB as a dense float32 weight (and as
much again for its gradient and its momentum). It is the sparse layer, at density 0.0005: 5
million active weights; the first and last layers (6.4 M and 1 M weights) stay dense
(``dense_first``, ``dense_last``), as many DST studies keep them. Magnitude pruning and random
growth every 50 iterations, for a few hundred iterations; the run must end ``ok`` with every
topology update's invariants checked, as any run. Printed: the run's steps, updates, time per
step and test accuracy, the active weights, and the process's peak resident memory (the goal:
at most 4 GB).

    python benchmarks/sparse_memory.py                 # about two minutes on 2 cores
    python benchmarks/sparse_memory.py --width 50000 --epochs 2
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

import dstbench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=100_000, help="hidden layers' width")
    parser.add_argument("--density", type=float, default=0.0005)
    parser.add_argument("--epochs", type=int, default=6, help="of about 50 iterations each")
    parser.add_argument("--update-period", type=int, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = {
        "model": f"mlp[hidden=[{args.width}, {args.width}]]",
        "dataset": "digits",
        "criterion": "magnitude",
        "growth": "random",
        "density": args.density,
        "distribution": "uniform",
        "dense_first": True,
        "dense_last": True,
        "update_period": args.update_period,
        "epochs": args.epochs,
        "seed": 0,
    }
    dense_positions = args.width * args.width
    started = time.perf_counter()
    record = dstbench.execute(spec, engine="sparse", device="cpu")
    wall = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    if record["status"] != "ok":
        raise SystemExit(f"run {record['status']}: {record.get('error') or record.get('reason')}")
    layers = record["density"]["layers"]
    active = sum(round(layer["density"] * layer["numel"]) for layer in layers.values())
    timings = record["timings"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"kernels {record['sparse_engine']['kernels']}, built sparse: "
        f"{record['sparse_engine'].get('built_sparse', False)}"
    )
    print(
        f"model 64 -> {args.width:,} -> {args.width:,} -> 10: the sparse layer has "
        f"{dense_positions:,} positions ({dense_positions * 4 / 1e9:.1f} GB as dense float32), "
        f"{active:,} active (density {record['density']['achieved']:.6f})"
    )
    print(
        f"{timings['steps']} steps, {record['topology']['updates']} topology updates "
        f"({record['topology']['pruned']:,} weights pruned and as many grown), "
        f"{timings['seconds_per_step'] * 1e3:.1f} ms/step, wall {wall:.0f} s, "
        f"test accuracy {record['metrics']['test_accuracy'] * 100:.2f}%"
    )
    print(f"peak resident memory: {peak_gb:.2f} GB (goal <= 4 GB)")


if __name__ == "__main__":
    main()
