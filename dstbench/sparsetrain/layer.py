"""A Linear layer that holds only its active weights: values, their positions, and the
CSR/CSC index the kernels walk.

The layer's state is ``values`` (a parameter, one entry per active weight, in row-major
position order), ``indices`` (their sorted linear positions ``row * in_features + col``, a
buffer) and the ordinary ``bias``. Everything else (row pointers, columns, the CSC index and
its permutation) is derived from ``indices`` and rebuilt when they change: after a topology
update, and after ``load_state_dict`` (checkpoints, the best-validation state).

Activations flow through the kernels transposed (features x batch): the forward product
returns ``yt.t()``, a view, so that the next sparse layer's ``x.t()`` is already contiguous and
the chain of layers transposes nothing but the network's input and the last gradient.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dstbench.errors import DstbenchError
from dstbench.sparsetrain import native


@dataclass
class CsrIndex:
    """The positions of a ``(rows, cols)`` layer's stored weights, in CSR and CSC form."""

    rows: int
    cols: int
    #: Sorted linear positions (int64), one per stored weight.
    indices: torch.Tensor
    #: CSR: ``rowptr[i]:rowptr[i+1]`` are row i's entries; ``col`` their columns.
    rowptr: torch.Tensor
    col: torch.Tensor
    #: CSC: ``colptr[j]:colptr[j+1]`` are column j's entries, ``row`` their rows, ``perm`` their
    #: CSR positions (values stay in CSR order; the transposed product reads through it).
    colptr: torch.Tensor
    row: torch.Tensor
    perm: torch.Tensor

    @classmethod
    def of(cls, indices: torch.Tensor, rows: int, cols: int) -> CsrIndex:
        """The index of sorted, unique linear ``indices``."""
        indices = indices.contiguous()
        row_of = torch.div(indices, cols, rounding_mode="floor")
        col_of = indices - row_of * cols
        rowptr = torch.zeros(rows + 1, dtype=torch.long, device=indices.device)
        torch.cumsum(torch.bincount(row_of, minlength=rows), 0, out=rowptr[1:])
        perm = torch.argsort(col_of, stable=True)
        colptr = torch.zeros(cols + 1, dtype=torch.long, device=indices.device)
        torch.cumsum(torch.bincount(col_of, minlength=cols), 0, out=colptr[1:])
        return cls(
            rows=rows,
            cols=cols,
            indices=indices,
            rowptr=rowptr,
            col=col_of,
            colptr=colptr,
            row=row_of.index_select(0, perm),
            perm=perm,
        )

    @property
    def nnz(self) -> int:
        """Number of stored weights."""
        return self.indices.numel()


def _csr(
    pointers: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """A CSR tensor over our own arrays (no copy; their invariants hold by construction).
    torch warns that its CSR support is in beta at every construction: not news here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return torch.sparse_csr_tensor(pointers, indices, values, size, check_invariants=False)


class _Kernels:
    """The three products, by the compiled kernels or by torch's sparse kernels."""

    def __init__(self, native_kernels: native.NativeKernels | None) -> None:
        self.native = native_kernels

    def transposed(self, x: torch.Tensor) -> torch.Tensor:
        """``x.t()`` as a contiguous tensor (free when it already is one)."""
        if self.native is not None:
            return self.native.transposed(x)
        return x.t().contiguous()

    @property
    def name(self) -> str:
        """``native`` or ``torch``."""
        return "native" if self.native is not None else "torch"

    def forward(
        self, index: CsrIndex, values: torch.Tensor, xt: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """``yt = W @ xt (+ bias)``, (rows x batch)."""
        if self.native is not None:
            out = torch.empty(index.rows, xt.shape[1], dtype=xt.dtype, device=xt.device)
            self.native.spmm(index.rowptr, index.col, values, xt, bias, out)
            return out
        weight = _csr(index.rowptr, index.col, values, (index.rows, index.cols))
        if bias is None:
            return torch.sparse.mm(weight, xt)
        return torch.addmm(bias.unsqueeze(1), weight, xt)

    def backward(
        self,
        index: CsrIndex,
        values: torch.Tensor,
        xt: torch.Tensor,
        dyt: torch.Tensor,
        need_input: bool,
        need_values: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(dxt, gval)``: the input gradient (cols x batch) and the values' gradient."""
        batch = xt.shape[1]
        if self.native is not None:
            gval = torch.empty_like(values) if need_values else None
            dxt = None
            if need_values:
                assert gval is not None
                self.native.sddmm(index.rowptr, index.col, dyt, xt, gval)
            if need_input:
                dxt = torch.empty(index.cols, batch, dtype=xt.dtype, device=xt.device)
                self.native.spmm_t(index.colptr, index.row, index.perm, values, dyt, dxt)
            return dxt, gval
        gval = sddmm(self, index, dyt, xt) if need_values else None
        dxt = None
        if need_input:
            transposed = _csr(
                index.colptr,
                index.row,
                values.index_select(0, index.perm),
                (index.cols, index.rows),
            )
            dxt = torch.sparse.mm(transposed, dyt)
        return dxt, gval


def sddmm(kernels: _Kernels, index: CsrIndex, dyt: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    """``dyt @ xt.T`` at the stored positions only (the values' gradient)."""
    if kernels.native is not None:
        out = torch.empty(index.nnz, dtype=xt.dtype, device=xt.device)
        kernels.native.sddmm(index.rowptr, index.col, dyt, xt, out)
        return out
    zeros = torch.zeros(index.nnz, dtype=xt.dtype, device=xt.device)
    pattern = _csr(index.rowptr, index.col, zeros, (index.rows, index.cols))
    return torch.sparse.sampled_addmm(pattern, dyt, xt.t(), beta=0.0).values()


def select_kernels(device: torch.device, dtype: torch.dtype) -> _Kernels:
    """The compiled kernels for float32 on a CPU (unless ``DSTBENCH_SPARSE_KERNELS=torch``),
    torch's sparse kernels otherwise (CUDA, other dtypes, no C compiler)."""
    wanted = native.choice()
    if wanted != "torch" and device.type == "cpu" and dtype == torch.float32:
        loaded = native.load()
        if loaded is not None:
            return _Kernels(loaded)
        if wanted == "native":
            msg = f"{native.KERNELS_VARIABLE}=native: the C kernels could not be built"
            raise DstbenchError(msg)
    return _Kernels(None)


class _SparseLinearFunction(torch.autograd.Function):
    """Forward and backward of :class:`SparseLinear` (inputs 2-D)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        values: torch.Tensor,
        bias: torch.Tensor | None,
        layer: SparseLinear,
    ) -> torch.Tensor:
        # free when x is the previous sparse layer's (transposed) output
        xt = layer.kernels.transposed(x)
        yt = layer.kernels.forward(layer.index, values, xt, bias)
        ctx.layer = layer
        ctx.index = layer.index
        ctx.has_bias = bias is not None
        ctx.save_for_backward(xt, values)
        return yt.t()

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[Any, ...]:
        xt, values = ctx.saved_tensors
        layer: SparseLinear = ctx.layer
        dyt = layer.kernels.transposed(dy)
        need_input, need_values, need_bias = ctx.needs_input_grad[:3]
        dxt, gval = layer.kernels.backward(ctx.index, values, xt, dyt, need_input, need_values)
        # A topology update at this step reads the batch's activations and output gradients
        # (the dense gradient for criteria that need it; the new positions' gradient).
        layer.stash = (xt, dyt)
        gbias = dyt.sum(1) if need_bias and ctx.has_bias else None
        return (dxt.t() if dxt is not None else None), gval, gbias, None


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with W held as its active values and their positions only."""

    #: Counted as a Linear of ``in_features`` x ``out_features`` by the MAC count.
    holds_active_weights_only = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        indices: torch.Tensor,
        values: torch.Tensor,
        bias: nn.Parameter | None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.values = nn.Parameter(values.detach().clone().contiguous())
        self.bias = bias
        self.register_buffer("indices", indices.detach().clone().contiguous())
        self.index = CsrIndex.of(self.indices, out_features, in_features)
        self.kernels = select_kernels(self.values.device, self.values.dtype)
        #: (xt, dyt) of the latest backward pass (what a topology update reads).
        self.stash: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_dense(cls, linear: nn.Linear, mask: torch.Tensor) -> SparseLinear:
        """The layer of ``linear``'s active weights (``mask``); the bias parameter is kept."""
        flat_mask = mask.reshape(-1)
        indices = flat_mask.nonzero().squeeze(1)
        values = linear.weight.detach().reshape(-1).index_select(0, indices)
        return cls(linear.in_features, linear.out_features, indices, values, linear.bias)

    @property
    def shape(self) -> tuple[int, int]:
        """The dense weight's shape ``(out_features, in_features)``."""
        return (self.out_features, self.in_features)

    @property
    def numel(self) -> int:
        """Positions of the dense weight."""
        return self.out_features * self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ W.T + b`` over the last dimension of ``x``."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features) if x.dim() != 2 else x
        out = _SparseLinearFunction.apply(flat, self.values, self.bias, self)
        return out if x.dim() == 2 else out.reshape(*lead, self.out_features)

    def set_structure(self, indices: torch.Tensor, values: torch.Tensor) -> None:
        """New positions and values (same count or not); the parameter object is kept, so the
        optimizer keeps tracking it."""
        self.indices = indices.contiguous()
        self.values.data = values.contiguous()
        self.index = CsrIndex.of(self.indices, self.out_features, self.in_features)

    def values_gradient(self) -> torch.Tensor | None:
        """The gradient at the stored positions from the latest backward pass (None before)."""
        if self.stash is None:
            return None
        xt, dyt = self.stash
        return sddmm(self.kernels, self.index, dyt, xt)

    def dense_gradient(self) -> torch.Tensor | None:
        """The latest batch's dense weight gradient ``dY^T X`` (one dense product)."""
        if self.stash is None:
            return None
        xt, dyt = self.stash
        return dyt @ xt.t()

    def dense_weight(self) -> torch.Tensor:
        """The weight as a dense tensor (zeros at inactive positions)."""
        dense = torch.zeros(self.numel, dtype=self.values.dtype, device=self.values.device)
        dense.index_copy_(0, self.indices, self.values.detach())
        return dense.view(self.shape)

    def dense_mask(self) -> torch.Tensor:
        """Bool mask of the active positions."""
        mask = torch.zeros(self.numel, dtype=torch.bool, device=self.indices.device)
        mask[self.indices] = True
        return mask.view(self.shape)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # A state of another topology (a checkpoint, the best-validation state) has other
        # positions: resize to them, load, and rebuild the derived index.
        indices = state_dict.get(prefix + "indices")
        if isinstance(indices, torch.Tensor) and indices.shape != self.indices.shape:
            self.indices = torch.empty_like(indices, device=self.indices.device)
            self.values.data = torch.empty(
                indices.shape, dtype=self.values.dtype, device=self.values.device
            )
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.index = CsrIndex.of(self.indices, self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"active={self.indices.numel()}, kernels={self.kernels.name}"
        )
