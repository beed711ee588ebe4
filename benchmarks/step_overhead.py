"""DST vs dense training time, side by side: what masks and topology updates cost.

Both modes go through dstbench's real training loop (``dstbench.execute``) on the same random
CIFAR-sized data, alternating dense and DST runs so that machine noise hits both alike. Each
run trains ``--period`` iterations (one epoch) and the DST run updates its topology exactly once,
at the last iteration, so the ratio includes the update cost amortized over ΔT iterations.
The ratio compares training time only (``timings.train_seconds``: no evaluation, no setup).

    python benchmarks/step_overhead.py                 # mlp_cifar and resnet20, ΔT = 800
    python benchmarks/step_overhead.py --models mlp_cifar --repeats 5

The last line is the worst DST/dense ratio over the models. On a CPU only the ratio means
something; absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import statistics

import torch

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.plugins import load_plugins


class RandomCifar:
    """A dataset plugin: random CIFAR-shaped tensors (no file, no download)."""

    @hookimpl
    def dstbench_register_datasets(self, register):
        def random_cifar(ctx, samples: int = 1024) -> DatasetParts:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(samples, 3, 32, 32, generator=generator)
            y = torch.randint(0, 10, (samples,), generator=generator)
            return DatasetParts(
                train=TensorSplit(x, y),
                test=TensorSplit(x[:256], y[:256]),
                input_shape=(3, 32, 32),
                num_classes=10,
            )

        register("random_cifar", random_cifar, description="random CIFAR-shaped data")


BATCH = {"mlp_cifar": 128, "mlp": 128, "resnet20": 32}


def run_once(model: str, method: str, period: int, device: str, plugins) -> float:
    batch = BATCH.get(model, 64)
    spec = {
        "model": model,
        "dataset": f"random_cifar[samples={period * batch}]",
        "method": method,
        "criterion": "magnitude",
        "growth": "gradient",
        "density": 0.1,
        "update_period": period,
        "epochs": 1,
        "batch_size": batch,
        "val_fraction": 0.0,
        "seed": 0,
    }
    record = dstbench.execute(spec, plugins=plugins, device=device)
    if record["status"] != "ok":
        raise SystemExit(
            f"{model} {method} run failed: {record.get('error') or record.get('reason')}"
        )
    expected_updates = 1 if method == "dst" else 0
    assert record["topology"]["updates"] == expected_updates, record["topology"]
    return float(record["timings"]["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp_cifar", "resnet20"])
    parser.add_argument(
        "--period", type=int, default=800, help="ΔT = iterations per run (default 800)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="dense/DST pairs per model (default 3)"
    )
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    plugins = load_plugins(
        extra=[("random-cifar", RandomCifar())], env={"DSTBENCH_LOAD_PLUGINS": "random-cifar"}
    )
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {args.device}, ΔT = {args.period}"
    )
    ratios = {}
    for model in args.models:
        run_once(model, "dense", min(args.period, 50), args.device, plugins)  # warm-up
        dense, dst = [], []
        for _ in range(args.repeats):
            dense.append(run_once(model, "dense", args.period, args.device, plugins))
            dst.append(run_once(model, "dst", args.period, args.device, plugins))
        pair_ratios = [s / d for s, d in zip(dst, dense, strict=True)]
        ratios[model] = statistics.median(pair_ratios)
        print(
            f"{model:>10}: dense {statistics.median(dense) / args.period * 1e3:7.2f} ms/step, "
            f"DST {statistics.median(dst) / args.period * 1e3:7.2f} ms/step, "
            f"ratio per pair {', '.join(f'{r:.3f}' for r in pair_ratios)} "
            f"-> median {ratios[model]:.3f}"
        )
    worst = max(ratios, key=ratios.__getitem__)
    detail = ", ".join(f"{m} {r:.3f}" for m, r in ratios.items())
    print(
        f"DST/dense training-time ratio at ΔT={args.period} (update included): "
        f"{ratios[worst]:.3f} (worst; {detail})"
    )


if __name__ == "__main__":
    main()
