"""A throw-away plugin for the suite tests, loaded in worker processes through
``DSTBENCH_PLUGIN_MODULES=dstbench_suite_testplugin`` (this directory is on their path).

* criterion ``explode`` raises: the run is recorded ``failed`` with its traceback;
* criterion ``sigkill_self`` kills its own worker process with SIGKILL;
* model ``nan_mlp`` outputs NaN: the run is recorded ``diverged``.
"""

from __future__ import annotations

import os
import signal

import torch
from torch import nn

from dstbench import hookimpl

MODULE = "dstbench_suite_testplugin"


def explode(ctx):
    """Raises at the first topology update."""
    raise RuntimeError("explode criterion: boom")


def hang(ctx):
    """Never returns, as a plugin stuck in a loop would."""
    import time

    while True:
        time.sleep(1)


def sigkill_self(ctx):
    """Kills the process that runs it, as the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)
    return ctx.weight.abs()  # pragma: no cover - never reached


class _NanMLP(nn.Module):
    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * float("nan")


def nan_mlp(input_shape, num_classes):
    """A linear model whose outputs are NaN."""
    features = 1
    for size in input_shape:
        features *= size
    return _NanMLP(features, num_classes)


@hookimpl
def dstbench_register_criteria(register):
    register("explode", explode)
    register("sigkill_self", sigkill_self)
    register("hang", hang)


@hookimpl
def dstbench_register_models(register):
    register("nan_mlp", nan_mlp)
