"""Prune-fraction (ζ) schedules, as a plugin.

``fn(step, total_steps, initial, **params)`` gives ζ at iteration ``step`` (1-based). Every
schedule takes ``end_fraction``: topology updates stop after that fraction of training (RigL
stops at 0.75; the paper never stops, i.e. 1.0).
"""

from __future__ import annotations

import math

from dstbench.contracts.components import Register
from dstbench.hookspecs import hookimpl


def _progress(step: int, total_steps: int, end_fraction: float) -> float | None:
    """Fraction of the update window elapsed, or None once updates have ended."""
    end = end_fraction * total_steps
    if end <= 0 or step > end:
        return None
    return step / end


def cosine(
    step: int, total_steps: int, initial: float, final: float = 0.005, end_fraction: float = 1.0
) -> float:
    """Cosine annealing from ζ₀ to ``final`` over the update window (the paper: 0.5 → 0.005
    over all iterations): ζ(t) = final + (ζ₀ − final)(1 + cos(π t / T)) / 2.
    """
    progress = _progress(step, total_steps, end_fraction)
    if progress is None:
        return 0.0
    return final + (initial - final) * (1.0 + math.cos(math.pi * progress)) / 2.0


def linear(
    step: int, total_steps: int, initial: float, final: float = 0.005, end_fraction: float = 1.0
) -> float:
    """Linear decay from ζ₀ to ``final`` over the update window."""
    progress = _progress(step, total_steps, end_fraction)
    if progress is None:
        return 0.0
    return initial + (final - initial) * progress


def constant(step: int, total_steps: int, initial: float, end_fraction: float = 1.0) -> float:
    """ζ₀ at every update of the window."""
    return 0.0 if _progress(step, total_steps, end_fraction) is None else initial


@hookimpl
def dstbench_register_schedules(register: Register) -> None:
    """Register the schedules."""
    register("cosine", cosine, description="cosine decay ζ₀ → final (paper: 0.5 → 0.005)")
    register("linear", linear, description="linear decay ζ₀ → final")
    register("constant", constant, description="ζ₀ at every update")
