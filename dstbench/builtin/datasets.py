"""The built-in datasets, as a plugin."""

from __future__ import annotations

from dstbench.datasets.digits import load_digits
from dstbench.hookspecs import hookimpl
from dstbench.registry import Register

#: Spec defaults for digits: ~40 iterations per epoch, so updates every 50 iterations.
DIGITS_DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 0.05, "update_period": 50}


@hookimpl
def dstbench_register_datasets(register: Register) -> None:
    """Register the built-in datasets."""
    register(
        "digits",
        load_digits,
        description="scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download)",
        defaults=DIGITS_DEFAULTS,
    )
