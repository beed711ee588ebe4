"""Checks made once, before anything trains: the device, the data, where results go.

A problem found here would otherwise fail every run of a suite, one after the other (3,050
failed records for a paper suite on a machine without its data), or lose a run's result after
it trained (``--output`` naming a directory). Each check raises or returns one line per
problem, naming what was looked at and how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dstbench.contracts.data import DatasetContext, resolve_data_root
from dstbench.contracts.spec import format_component
from dstbench.errors import DstbenchError

#: Devices every machine understands.
_DEVICE_WORDS = ("auto", "cpu", "cuda", "cuda:N")


def check_device(device: str, option: str = "--device") -> None:
    """Refuse a device this machine cannot train on.

    :raises DstbenchError: for an unknown device name, CUDA without a GPU, or a GPU index
        beyond the GPUs present.
    """
    import torch

    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        choices = ", ".join(_DEVICE_WORDS)
        raise DstbenchError(f"{option} {device}: not a device; expected {choices}") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DstbenchError(f"{option} {device}: no CUDA device is available here")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise DstbenchError(
                f"{option} {device}: this machine has {count} CUDA device(s) (cuda:0 to "
                f"cuda:{count - 1})"
            )
        return
    try:
        torch.empty(1, device=parsed)
    except Exception as exc:  # the backend is compiled in but cannot be used here
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DstbenchError(f"{option} {device}: cannot use this device ({reason})") from None


@dataclass(frozen=True)
class DataCheck:
    """The outcome of checking one dataset reference."""

    #: ``cifar10`` or ``higgs[file="x.csv"]``.
    dataset: str
    #: None when the data is there, else the one-line reason (where it looked, how to get it).
    problem: str | None


def dataset_references(specs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The distinct datasets (name and parameters) a list of normalized specs reads, each as
    ``{"dataset", "validation"}`` with the first spec's validation (the files are the same)."""
    seen: dict[str, dict[str, Any]] = {}
    for spec in specs:
        ref = {"dataset": spec["dataset"], "validation": spec.get("validation", "split")}
        seen.setdefault(json.dumps(spec["dataset"], sort_keys=True, default=str), ref)
    return list(seen.values())


def check_data(
    references: Iterable[Mapping[str, Any]],
    registry: Any,
    *,
    data_root: str | None,
    download: bool,
) -> list[DataCheck]:
    """Load each dataset reference once (downloading it once with ``download``).

    Only user errors (:class:`DstbenchError`: missing or malformed files, a bad parameter)
    count as problems: any other exception is the dataset plugin's bug, which its runs will
    record with a traceback.
    """

    root = resolve_data_root(data_root)
    results = []
    for ref in references:
        component = ref["dataset"]
        name = format_component(component)
        info = registry.datasets[component["name"]]
        context = DatasetContext(root=root, download=download, validation=ref["validation"])
        try:
            info.fn(context, **component["params"])
        except DstbenchError as exc:
            results.append(DataCheck(name, str(exc)))
            continue
        except Exception:  # not a data problem but the plugin's bug: its runs record it
            pass
        results.append(DataCheck(name, None))
    return results


def check_output_dir(path: str | Path) -> Path:
    """Refuse a results directory that is a file, or where nothing can be written."""
    from dstbench.io import check_writable_dir

    return check_writable_dir(path)
