"""Throughput of the batched engine vs one run at a time, side by side in one invocation.

    python benchmarks/batched.py                    # quick suite (159 runs) at -j 2, MLP-CIFAR
    python benchmarks/batched.py --runs 48 --cifar-runs 4 --kernels

1. The quick suite (``suites/quick.toml``: MLP on digits, 30 epochs), or its first ``--runs``
   runs, through the real local executor at the same ``-j``: every worker running one run at a
   time (the single engine) against every worker training its group of runs together (the
   batched engine). Wall time includes starting the workers; runs/minute = runs / wall time.
2. MLP-CIFAR-sized runs (the paper's 3072-1024-512-10 MLP, batch 128) on random CIFAR-shaped
   data, in this process with one thread: ``--cifar-runs`` runs one after the other with the
   single engine, then the same runs as one batched group.
3. With ``--kernels``: forward + backward time per run and step of the stacked kernels that
   the engine uses against ``torch.func.vmap`` over ``functional_call``.

Each pair is measured back to back, single first; on a machine shared with other work only the
ratios mean something, and even they move with the load (the load average is printed).
"""

from __future__ import annotations

import argparse
import copy
import io
import itertools
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.batched.engine import execute_group
from dstbench.batched.forward import stacked_forward
from dstbench.plugins import get_plugins, load_plugins, set_plugins
from dstbench.suite import run_suite
from dstbench.suite.loader import load_suite

ROOT = Path(__file__).resolve().parent.parent


def quick_suite(runs: int | None, workers: int, root: Path) -> tuple[float, float, int]:
    """Wall seconds of the quick suite (first ``runs`` cells) with each engine."""
    suite = load_suite(ROOT / "suites" / "quick.toml", get_plugins().registry)
    if runs:
        suite.cells = suite.cells[:runs]
    seconds = {}
    for engine in ("single", "batched"):
        started = time.perf_counter()
        outcome = run_suite(
            suite,
            output=root / engine,
            workers=workers,
            device="cpu",
            executor={"name": "local", "params": {"threads": 1}},
            engine=engine,
            stream=io.StringIO(),
            live=False,
        )
        seconds[engine] = time.perf_counter() - started
        assert outcome.counts() == {"ok": len(suite.cells)}, outcome.counts()
    return seconds["single"], seconds["batched"], len(suite.cells)


class RandomCifar:
    """A dataset plugin: random CIFAR-shaped tensors (no file, no download)."""

    @hookimpl
    def dstbench_register_datasets(self, register):
        def random_cifar(ctx, samples: int = 1280) -> DatasetParts:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(samples + 256, 3, 32, 32, generator=generator)
            y = torch.randint(0, 10, (samples + 256,), generator=generator)
            return DatasetParts(
                train=TensorSplit(x[:samples], y[:samples]),
                test=TensorSplit(x[samples:], y[samples:]),
                input_shape=(3, 32, 32),
                num_classes=10,
            )

        register("random_cifar", random_cifar, description="random CIFAR-shaped data")


def cifar_specs(runs: int, steps: int) -> list[dict]:
    criteria = ["magnitude", "snip", "mest", "set"]
    return [
        {
            "model": "mlp_cifar",
            "dataset": f"random_cifar[samples={steps * 128}]",
            "criterion": criteria[i % len(criteria)],
            "growth": "gradient" if i % 2 else "random",
            "density": [0.05, 0.1, 0.2][i % 3],
            "seed": i,
            "epochs": 1,
            "batch_size": 128,
            "update_period": max(1, steps // 2),
            "val_fraction": 0.0,
        }
        for i in range(runs)
    ]


def mlp_cifar(runs: int, steps: int) -> tuple[float, float]:
    previous = get_plugins()
    plugins = load_plugins(
        extra=[("random-cifar", RandomCifar())], env={"DSTBENCH_LOAD_PLUGINS": "random-cifar"}
    )
    set_plugins(plugins)
    try:
        specs = cifar_specs(runs, steps)
        dstbench.execute({**specs[0], "dataset": "random_cifar[samples=256]"})  # warm-up
        started = time.perf_counter()
        for spec in specs:
            assert dstbench.execute(spec)["status"] == "ok"
        single = time.perf_counter() - started
        started = time.perf_counter()
        assert {r["status"] for r in execute_group(specs)} == {"ok"}
        batched = time.perf_counter() - started
    finally:
        set_plugins(previous)
    return single, batched


def kernels(k: int, batch: int, dims: list[int], reps: int = 5) -> tuple[float, float]:
    """ms per run-step of forward + backward: vmap(functional_call) vs the stacked forward."""
    from torch.func import functional_call, stack_module_state, vmap

    def make() -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(dims[:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-2], dims[-1]))
        return nn.Sequential(*layers)

    models = [make() for _ in range(k)]
    params, _ = stack_module_state(models)  # type: ignore[arg-type]
    base = copy.deepcopy(models[0]).to("meta")
    forward = stacked_forward(models[0])
    x = torch.randn(k, batch, dims[0])
    y = torch.randint(0, dims[-1], (k, batch))

    def loss(p: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(base, p, (xb,)), yb)

    batched_loss = vmap(loss)

    def with_vmap() -> None:
        batched_loss(params, x, y).sum().backward()

    def stacked() -> None:
        out = forward(params, x)
        losses = nn.functional.cross_entropy(
            out.reshape(k * batch, -1), y.reshape(-1), reduction="none"
        )
        losses.view(k, batch).mean(1).sum().backward()

    times = {}
    for name, fn in (("vmap", with_vmap), ("stacked", stacked)):
        fn()
        best = float("inf")
        for _ in range(reps):
            for p in params.values():
                p.grad = None
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        times[name] = best / k * 1e3
    return times["vmap"], times["stacked"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=0, help="first N quick-suite runs (0: all)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers (default 2)")
    parser.add_argument("--cifar-runs", type=int, default=8, help="MLP-CIFAR runs (default 8)")
    parser.add_argument("--cifar-steps", type=int, default=20, help="iterations per run")
    parser.add_argument("--kernels", action="store_true", help="also compare stacking kernels")
    parser.add_argument("--skip-quick", action="store_true", help="leave out the quick suite")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    if not args.skip_quick:
        with tempfile.TemporaryDirectory() as tmp:
            single, batched, runs = quick_suite(args.runs or None, args.jobs, Path(tmp))
        print(
            f"quick suite, {runs} runs, -j {args.jobs}: single {runs / single * 60:6.1f} runs/min "
            f"({single:.1f} s), batched {runs / batched * 60:6.1f} runs/min ({batched:.1f} s) "
            f"-> {single / batched:.2f}x"
        )
    if args.cifar_runs:
        single, batched = mlp_cifar(args.cifar_runs, args.cifar_steps)
        n = args.cifar_runs
        print(
            f"MLP-CIFAR, {n} runs x {args.cifar_steps} steps, 1 thread: "
            f"single {n / single * 60:6.1f} runs/min, batched {n / batched * 60:6.1f} runs/min "
            f"-> {single / batched:.2f}x"
        )
    if args.kernels:
        for k, batch, dims in ((53, 32, [64, 256, 128, 10]), (4, 128, [3072, 1024, 512, 10])):
            vmapped, stacked = kernels(k, batch, dims)
            print(
                f"kernels K={k} batch {batch} {dims}: vmap {vmapped:.3f} ms, stacked "
                f"{stacked:.3f} ms per run-step (fwd+bwd) -> {vmapped / stacked:.2f}x"
            )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
