"""Layer-wise density distributions, as a plugin.

``fn(shapes, density, **params)`` maps each layer name to its density. ER and ERK follow
Mocanu et al. (2018) / Evci et al. (2020) and the paper's ``ERK_initializer``: layer l gets
density ε·r_l with r_l = ((Σ dims)/(Π dims))^power; ε is solved so that the total count is met;
any layer that would exceed density 1 is set dense (the layers with the largest r_l first) and ε
is solved again, so the global density is still met exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from dstbench.contracts.components import Register
from dstbench.errors import SpecError
from dstbench.hookspecs import hookimpl

Shapes = Mapping[str, Sequence[int]]


def uniform(shapes: Shapes, density: float) -> dict[str, float]:
    """Every layer at the global density."""
    return {name: density for name in shapes}


def _er_solve(
    shapes: Shapes, density: float, raw: Callable[[Sequence[int]], float]
) -> dict[str, float]:
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    scores = {name: raw(shape) for name, shape in shapes.items()}
    dense: set[str] = set()
    while True:
        sparse = [name for name in shapes if name not in dense]
        divisor = sum(scores[name] * sizes[name] for name in sparse)
        if not sparse or divisor == 0:
            return {name: 1.0 for name in shapes}
        budget = sum(density * sizes[n] for n in sparse) - sum(
            (1.0 - density) * sizes[n] for n in dense
        )
        epsilon = budget / divisor
        largest = max(scores[name] for name in sparse)
        if epsilon * largest <= 1.0:
            break
        # Cap the layer(s) with the largest raw score, then re-solve for ε.
        dense.update(name for name in sparse if scores[name] == largest)
    return {name: 1.0 if name in dense else epsilon * scores[name] for name in shapes}


def _check_shape(shape: Sequence[int]) -> None:
    if len(shape) < 2:
        msg = f"ER/ERK need weight tensors of at least 2 dimensions, got shape {tuple(shape)}"
        raise SpecError(msg)


def er(shapes: Shapes, density: float, power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi: r = ((c_out + c_in) / (c_out·c_in))^power, channel dimensions only."""

    def raw(shape: Sequence[int]) -> float:
        _check_shape(shape)
        c_out, c_in = shape[0], shape[1]
        return float(((c_out + c_in) / (c_out * c_in)) ** power)

    return _er_solve(shapes, density, raw)


def erk(shapes: Shapes, density: float, power: float = 1.0) -> dict[str, float]:
    """Erdős–Rényi-Kernel: r = ((Σ dims) / (Π dims))^power, kernel dimensions included."""

    def raw(shape: Sequence[int]) -> float:
        _check_shape(shape)
        return float((sum(shape) / math.prod(shape)) ** power)

    return _er_solve(shapes, density, raw)


@hookimpl
def dstbench_register_distributions(register: Register) -> None:
    """Register the distributions."""
    register("uniform", uniform)
    register("er", er, description="Erdős–Rényi (channel dims), capped at 1 and re-solved")
    register("erk", erk, description="Erdős–Rényi-Kernel (all dims), capped at 1 and re-solved")
