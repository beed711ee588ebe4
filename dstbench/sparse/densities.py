"""Layer-wise densities from a distribution plugin, checked."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dstbench.contracts.components import ComponentInfo
from dstbench.errors import CriterionError


def checked_layer_densities(
    info: ComponentInfo,
    shapes: Mapping[str, Sequence[int]],
    density: float,
    **params: Any,
) -> dict[str, float]:
    """{layer name: density} for weight ``shapes`` at global ``density``.

    :raises CriterionError: if the distribution returns a bad mapping (missing layers, values
        outside [0, 1], or a total that misses the global density).
    """
    result = info.fn(dict(shapes), float(density), **info.resolve_params(params))
    where = f"distribution {info.name!r}"
    if not isinstance(result, Mapping) or set(result) != set(shapes):
        raise CriterionError(f"{where} must return a density for every layer in {sorted(shapes)}")
    total = sum(math.prod(s) for s in shapes.values())
    kept = 0.0
    for name, value in result.items():
        if not 0.0 <= float(value) <= 1.0 + 1e-12:
            raise CriterionError(f"{where}: layer {name!r} density {value} is outside [0, 1]")
        kept += min(float(value), 1.0) * math.prod(shapes[name])
    if total and abs(kept - density * total) > 1e-6 * total + 1e-9:
        raise CriterionError(
            f"{where}: layer densities keep {kept:.1f} of {total} weights, "
            f"expected {density * total:.1f}"
        )
    return {name: min(float(value), 1.0) for name, value in result.items()}
