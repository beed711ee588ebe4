"""The built-in models, as a plugin."""

from __future__ import annotations

from dstbench.hookspecs import hookimpl
from dstbench.models.mlp import mlp
from dstbench.registry import Register


@hookimpl
def dstbench_register_models(register: Register) -> None:
    """Register the built-in models."""
    register("mlp", mlp, description="MLP over the flattened input, hidden widths (256, 128)")
