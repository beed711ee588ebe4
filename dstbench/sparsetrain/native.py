"""The compiled CPU kernels (``kernels.c``): built once per machine with the C compiler, cached,
and called through ctypes.

Why C and not torch's own sparse kernels: on a CPU, torch's CSR product and
``sampled_addmm`` read the dense operand row-major, so every stored weight gathers ``batch``
scattered floats; these kernels keep activations transposed (features x batch), so every
stored weight reads or writes one contiguous, vectorized row (``benchmarks/sparse_speed.py``
measures both). Nothing here is required: without a compiler (or with
``DSTBENCH_SPARSE_KERNELS=torch``) the engine uses torch's kernels, which also run on CUDA.

The shared library is built with ``-O3 -march=native -std=gnu11`` (GCC/Clang vector types),
with OpenMP when the compiler has it, into ``$DSTBENCH_CACHE`` (default ``~/.cache/dstbench``),
under a name that hashes the source, the flags and the processor, and is renamed into place
atomically, so concurrent workers never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

from dstbench.errors import DstbenchError

SOURCE = Path(__file__).with_name("kernels.c")
#: ``DSTBENCH_SPARSE_KERNELS``: ``auto`` (native on CPU when it builds), ``native`` or ``torch``.
KERNELS_VARIABLE = "DSTBENCH_SPARSE_KERNELS"

_FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=gnu11")
_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p
_SIGNATURES: dict[str, list[type]] = {
    "dst_spmm": [_I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, ctypes.c_int],
    "dst_spmm_t": [_I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, _PTR, ctypes.c_int],
    "dst_sddmm": [_I64, _I64, _PTR, _PTR, _PTR, _PTR, _PTR, ctypes.c_int],
    "dst_transpose": [_I64, _I64, _PTR, _PTR],
}


def cache_dir() -> Path:
    """Where compiled kernels are kept (``$DSTBENCH_CACHE``, else ``~/.cache/dstbench``)."""
    root = os.environ.get("DSTBENCH_CACHE") or Path.home() / ".cache" / "dstbench"
    return Path(root) / "kernels"


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the processor's model and flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in text.splitlines() if line.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _build(compiler: str, flags: tuple[str, ...], target: Path) -> None:
    """Compile into a temporary file beside ``target`` and rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *flags, "-o", tmp, str(SOURCE)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class NativeKernels:
    """The loaded library: one method per kernel, taking tensors."""

    def __init__(self, lib: ctypes.CDLL, openmp: bool, path: Path) -> None:
        self.lib = lib
        self.openmp = openmp
        self.path = path
        for name, argtypes in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = argtypes
            fn.restype = None

    @staticmethod
    def _threads() -> int:
        return max(1, torch.get_num_threads())

    def spmm(
        self,
        rowptr: torch.Tensor,
        col: torch.Tensor,
        val: torch.Tensor,
        xt: torch.Tensor,
        bias: torch.Tensor | None,
        out: torch.Tensor,
    ) -> None:
        """``out (rows x batch) = W @ xt (+ bias)`` for W in CSR form."""
        rows, batch = out.shape
        self.lib.dst_spmm(
            rows,
            batch,
            rowptr.data_ptr(),
            col.data_ptr(),
            val.data_ptr(),
            xt.data_ptr(),
            bias.data_ptr() if bias is not None else None,
            out.data_ptr(),
            self._threads(),
        )

    def spmm_t(
        self,
        colptr: torch.Tensor,
        row: torch.Tensor,
        perm: torch.Tensor,
        val: torch.Tensor,
        dyt: torch.Tensor,
        out: torch.Tensor,
    ) -> None:
        """``out (cols x batch) = W^T @ dyt`` from W's CSC index (values in CSR order)."""
        cols, batch = out.shape
        self.lib.dst_spmm_t(
            cols,
            batch,
            colptr.data_ptr(),
            row.data_ptr(),
            perm.data_ptr(),
            val.data_ptr(),
            dyt.data_ptr(),
            out.data_ptr(),
            self._threads(),
        )

    def sddmm(
        self,
        rowptr: torch.Tensor,
        col: torch.Tensor,
        dyt: torch.Tensor,
        xt: torch.Tensor,
        out: torch.Tensor,
    ) -> None:
        """``out[k] = dyt[row k] . xt[col k]``: the weight gradient at the stored positions."""
        rows, batch = dyt.shape
        self.lib.dst_sddmm(
            rows,
            batch,
            rowptr.data_ptr(),
            col.data_ptr(),
            dyt.data_ptr(),
            xt.data_ptr(),
            out.data_ptr(),
            self._threads(),
        )

    def transposed(self, x: torch.Tensor) -> torch.Tensor:
        """``x.t().contiguous()`` (tiled; torch's strided copy is several times slower here)."""
        if x.t().is_contiguous():
            return x.t()
        if not x.is_contiguous():
            return x.t().contiguous()
        rows, cols = x.shape
        out = torch.empty(cols, rows, dtype=x.dtype, device=x.device)
        self.lib.dst_transpose(rows, cols, x.data_ptr(), out.data_ptr())
        return out


@lru_cache(maxsize=1)
def load() -> NativeKernels | None:
    """The compiled kernels, building them on first use; None when they cannot be built
    (no C compiler, or a build error), in which case the engine uses torch's kernels."""
    compiler = _compiler()
    if compiler is None:
        return None
    source = SOURCE.read_bytes()
    for flags, openmp in (((*_FLAGS, "-fopenmp"), True), (_FLAGS, False)):
        key = hashlib.sha256(
            b"\0".join([source, compiler.encode(), " ".join(flags).encode(), _cpu_id().encode()])
        ).hexdigest()[:16]
        target = cache_dir() / f"dstbench_kernels_{key}.so"
        try:
            if not target.exists():
                _build(compiler, flags, target)
            return NativeKernels(ctypes.CDLL(str(target)), openmp, target)
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def choice() -> str:
    """The kernels the user asked for: ``auto``, ``native`` or ``torch``."""
    value = os.environ.get(KERNELS_VARIABLE, "auto").strip().lower() or "auto"
    if value not in ("auto", "native", "torch"):
        msg = f"{KERNELS_VARIABLE} must be 'auto', 'native' or 'torch', got {value!r}"
        raise DstbenchError(msg)
    return value
