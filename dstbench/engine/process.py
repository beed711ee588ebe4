"""The process state every run starts from, whatever ran in the process before it.

A worker trains many runs in one process. Plugins may change process-wide settings (a
criterion that calls ``torch.set_default_dtype(torch.float64)``, disables gradients, turns on
deterministic algorithms or changes the thread count) and those would leak into the next
runs. :func:`reset_process_state` puts each of them back before a run starts: torch's default
dtype (float32) and device (cpu), grad mode on, anomaly detection off, deterministic
algorithms and cuDNN flags at torch's defaults, float32 matmul precision ``highest``, the
thread count the worker was given, and the global random generators (torch, numpy, Python)
seeded alike, so two runs of one spec start from the same state in any worker.
"""

from __future__ import annotations

import random

import numpy as np
import torch

#: The seed of the process-wide generators at the start of every run (each run then seeds
#: the streams it uses from its own seed).
GLOBAL_SEED = 0

_threads: int | None = None


def set_run_threads(threads: int) -> None:
    """The CPU thread count every run of this process starts with."""
    global _threads
    _threads = max(1, int(threads))


def reset_process_state() -> list[str]:
    """Put the process-wide settings back to the state runs start from.

    :return: the settings that had been changed (e.g. ``["default dtype torch.float64"]``),
        for a note in the record of the run that starts now.
    """
    global _threads
    changed = []
    if _threads is None:
        _threads = torch.get_num_threads()
    if torch.get_default_dtype() != torch.float32:
        changed.append(f"default dtype {torch.get_default_dtype()}")
        torch.set_default_dtype(torch.float32)
    get_device = getattr(torch, "get_default_device", None)
    if get_device is not None and get_device() != torch.device("cpu"):
        changed.append(f"default device {get_device()}")
        torch.set_default_device(None)
    if not torch.is_grad_enabled():
        changed.append("grad mode off")
        torch.set_grad_enabled(True)
    if torch.is_anomaly_enabled():
        changed.append("anomaly detection on")
        torch.set_anomaly_enabled(False)
    if torch.are_deterministic_algorithms_enabled():
        changed.append("deterministic algorithms on")
        torch.use_deterministic_algorithms(False)
    cudnn = torch.backends.cudnn
    if cudnn.deterministic or cudnn.benchmark:
        changed.append("cudnn flags")
        cudnn.deterministic = False
        cudnn.benchmark = False
    if torch.get_float32_matmul_precision() != "highest":
        changed.append(f"float32 matmul precision {torch.get_float32_matmul_precision()}")
        torch.set_float32_matmul_precision("highest")
    if torch.get_num_threads() != _threads:
        changed.append(f"{torch.get_num_threads()} threads")
        torch.set_num_threads(_threads)
    torch.manual_seed(GLOBAL_SEED)
    np.random.seed(GLOBAL_SEED)
    random.seed(GLOBAL_SEED)
    return changed
