"""Theoretical compute: forward multiply-accumulates of the sparsifiable layers.

The single and batched engines simulate sparsity with masks, so their wall-clock time is that
of dense training (the sparse engine's falls with density); the MAC
counts say what a sparse kernel could save. They are reported separately from measured time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def count_macs(model: nn.Module, sample: torch.Tensor) -> dict[str, int]:
    """Forward MACs per sample of every Linear/Conv weight, keyed by parameter name (a Linear
    the sparse engine holds as its active weights counts as its dense weight ``NAME.weight``:
    the density scales it, as for any other layer).

    Measured with forward hooks on one eval-mode pass over ``sample`` (a small batch), so
    spatial sizes are the real ones. Each output element of a layer costs one MAC per weight
    feeding it: ``in_features`` for Linear, ``in_channels/groups · kernel`` for Conv.
    """
    macs: dict[str, int] = {}
    names = {id(p): n for n, p in model.named_parameters()}
    module_names = {id(m): n for n, m in model.named_modules()}

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        if not isinstance(module, _LAYER_TYPES):  # a Linear held sparse: its dense weight's MACs
            name = f"{module_names[id(module)]}.weight"
            per = output.numel() // output.shape[0] * cast(int, module.in_features)
            macs[name] = macs.get(name, 0) + per
            return
        weight = cast(torch.Tensor, module.weight)
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            per_output = weight.numel() // weight.shape[1]
        elif isinstance(module, nn.modules.conv._ConvNd):
            per_output = weight[0].numel()
        else:
            per_output = weight.shape[1]
        name = names[id(weight)]
        macs[name] = macs.get(name, 0) + output.numel() // output.shape[0] * int(per_output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, _LAYER_TYPES) or getattr(m, "holds_active_weights_only", False)
    ]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(sample)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs


def sparse_macs(macs: Mapping[str, int], densities: Mapping[str, float]) -> int:
    """MACs per sample when each layer in ``densities`` only computes its active weights."""
    return round(sum(m * densities.get(name, 1.0) for name, m in macs.items()))
