"""Models whose dense form would not fit: sparse Linear layers built directly from their
active weights, never as dense tensors.

The model is first built on the ``meta`` device (shapes only, no memory). When a sparsified
Linear layer has more than :data:`DENSE_POSITIONS` positions, the run is built here instead of
densely: each such layer's active positions are drawn uniformly (exactly ``round(d·N)``, from
the run's topology generator) and their values from PyTorch's default ``nn.Linear``
initialisation, U(-1/sqrt(in), 1/sqrt(in)), as is the bias; every other module is
materialised and reset with its own ``reset_parameters``. Such a run cannot be compared with
the single engine (which could not hold it), so no attempt is made to share its random
streams.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dstbench.contracts.spec import RunSpec
from dstbench.engine.setup import info_of
from dstbench.errors import DstbenchError
from dstbench.sparse.densities import checked_layer_densities
from dstbench.sparse.masker import Masker, sparse_parameters
from dstbench.sparse.seeds import derive_seed
from dstbench.sparsetrain.layer import SparseLinear
from dstbench.sparsetrain.masker import AnyLayer, CsrLayer, SparseMasker, uniform_positions

#: A sparsified Linear layer with more positions than this (1 GiB of float32) is never built
#: densely by the sparse engine.
DENSE_POSITIONS = 1 << 28


def largest_sparse_linear(spec: RunSpec, meta_model: nn.Module) -> int:
    """Positions of the largest sparsified plain Linear weight of a model built on ``meta``."""
    assert spec.dense_first is not None and spec.dense_last is not None
    layers = sparse_parameters(meta_model, dense_first=spec.dense_first, dense_last=spec.dense_last)
    linear_weights = {id(m.weight) for m in meta_model.modules() if type(m) is nn.Linear}
    return max((w.numel() for _, w in layers if id(w) in linear_weights), default=0)


def build_large(
    spec: RunSpec, meta_model: nn.Module, device: torch.device
) -> tuple[nn.Module, SparseMasker]:
    """Materialise ``meta_model`` on ``device`` with its sparse Linear layers built sparse."""
    assert spec.dense_first is not None and spec.dense_last is not None
    assert spec.distribution is not None
    layers = sparse_parameters(meta_model, dense_first=spec.dense_first, dense_last=spec.dense_last)
    owners = {
        id(module.weight): (name, module)
        for name, module in meta_model.named_modules()
        if type(module) is nn.Linear
    }
    for name, weight in layers:
        if id(weight) not in owners:
            msg = (
                f"model {spec.model.name!r} is too large to build densely, and its sparse "
                f"layer {name!r} is not a plain Linear layer that the sparse engine can build "
                "from its active weights"
            )
            raise DstbenchError(msg)
    densities = checked_layer_densities(
        info_of(spec.distribution),
        {name: tuple(w.shape) for name, w in layers},
        spec.density,
        **spec.distribution.params,
    )
    generator = torch.Generator().manual_seed(derive_seed(spec.seed, "topology"))
    torch.manual_seed(spec.seed)
    sparse_ids = {id(w) for _, w in layers}
    for module in meta_model.modules():
        own = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
        if not own or (type(module) is nn.Linear and id(module.weight) in sparse_ids):
            continue
        module.to_empty(device=device, recurse=False)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
    csr_layers: list[AnyLayer] = []
    for name, weight in layers:
        module_name, linear = owners[id(weight)]
        assert isinstance(linear, nn.Linear)
        count = round(densities[name] * weight.numel())
        positions = uniform_positions(weight.numel(), count, generator).to(device)
        bound = 1.0 / math.sqrt(linear.in_features) if linear.in_features else 0.0
        values = torch.empty(count, device=device).uniform_(-bound, bound)
        bias = None
        if linear.bias is not None:
            bias = nn.Parameter(torch.empty(linear.out_features, device=device))
            nn.init.uniform_(bias, -bound, bound)
        sparse = SparseLinear(linear.in_features, linear.out_features, positions, values, bias)
        parent_name, _, attribute = module_name.rpartition(".")
        setattr(meta_model.get_submodule(parent_name), attribute, sparse)
        csr_layers.append(CsrLayer(name, sparse, count))
    return meta_model, SparseMasker(Masker([], {}, generator=generator), csr_layers)
