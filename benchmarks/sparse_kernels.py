"""One sparse layer's forward and backward, side by side: an ordinary ``nn.Linear``, the
sparse engine's kernels (compiled, and torch's own CSR kernels), and SparseProp (Nikdan et
al., ICML 2023; ``pip install sparseprop``, skipped with a note when it is not installed).

MLP-CIFAR's two large layers (1024 x 3072 and 512 x 1024), batch 128, one thread, densities
0.01 to 0.2. Every candidate computes the output, the input gradient and the weight gradient
at the active positions. The candidates take turns, one forward+backward each, ``--rounds``
times, and the medians are compared, so load on a shared machine hits them alike. Printed:
each one's time over the dense layer's.

    python benchmarks/sparse_kernels.py          # about a minute
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from dstbench.sparsetrain import native
from dstbench.sparsetrain.layer import SparseLinear

SHAPES = [(1024, 3072), (512, 1024)]
BATCH = 128


def _sparseprop() -> type | None:
    try:
        from sparseprop.modules import SparseLinear as SparsePropLinear
    except ImportError:
        return None
    return SparsePropLinear


def _step(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).backward(grad)

    return run


def _candidates(out_f: int, in_f: int, density: float) -> dict[str, Callable[[], None]]:
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(in_f, out_f)
    mask = torch.rand(out_f, in_f, generator=generator) < density
    x = torch.randn(BATCH, in_f, generator=generator, requires_grad=True)
    grad = torch.randn(BATCH, out_f, generator=generator)
    found = {"dense": _step(linear, x, grad)}
    os.environ[native.KERNELS_VARIABLE] = "native"
    found["dstbench"] = _step(SparseLinear.from_dense(linear, mask), x, grad)
    os.environ[native.KERNELS_VARIABLE] = "torch"
    found["torch csr"] = _step(SparseLinear.from_dense(linear, mask), x, grad)
    os.environ.pop(native.KERNELS_VARIABLE)
    sparseprop = _sparseprop()
    if sparseprop is not None:
        masked = torch.nn.Linear(in_f, out_f)
        with torch.no_grad():
            masked.weight.copy_(linear.weight * mask)
        found["sparseprop"] = _step(sparseprop.from_dense(masked), x, grad)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.01, 0.02, 0.05, 0.1, 0.2])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if native.load() is None:
        raise SystemExit("the compiled kernels cannot be built here (no C compiler)")
    missing = "" if _sparseprop() else " (sparseprop not installed: pip install sparseprop)"
    print(f"torch {torch.__version__}, 1 thread, batch {BATCH}, forward + backward{missing}")
    for out_f, in_f in SHAPES:
        print(f"\nlayer {out_f} x {in_f}: time / dense nn.Linear (median of {args.rounds})")
        names: list[str] = []
        rows = []
        for density in args.densities:
            candidates = _candidates(out_f, in_f, density)
            names = list(candidates)
            times: dict[str, list[float]] = {name: [] for name in candidates}
            for run in candidates.values():
                run()  # warm up
            for _ in range(args.rounds):
                for name, run in candidates.items():
                    started = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - started)
            medians = {name: statistics.median(t) for name, t in times.items()}
            rows.append((density, medians))
        print(f"{'density':>8} {'dense ms':>9} " + " ".join(f"{n:>11}" for n in names[1:]))
        for density, medians in rows:
            dense = medians["dense"]
            print(
                f"{density:8g} {dense * 1e3:9.2f} "
                + " ".join(f"{medians[n] / dense:11.3f}" for n in names[1:])
            )


if __name__ == "__main__":
    main()
