"""``dstbench run``: train one run and write its result record."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dstbench.cli import warn_plugin_failures
from dstbench.cli.commands import COMMANDS
from dstbench.contracts.spec import describe_spec
from dstbench.engine.single import execute
from dstbench.engine.spec import FIELDS, PAPER_FIDELITY, apply_paper_fidelity
from dstbench.errors import DstbenchError
from dstbench.io import check_output_file, check_writable_dir
from dstbench.plugins import get_plugins
from dstbench.preflight import check_device
from dstbench.suite.progress import accuracy_text
from dstbench.suite.store import write_record

NAME = "run"
HELP = COMMANDS["run"].help

_TYPES: dict[str, Any] = {"int": int, "float": float}


def _fractions(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def dataset_defaults() -> dict[str, list[str]]:
    """Run-spec key -> ``digits: 30``-style defaults of the registered datasets that set one
    (empty when the plugins cannot be loaded)."""
    try:
        datasets = get_plugins().registry.datasets
        infos = sorted(datasets.items())
    except Exception:  # --help must work even when a plugin is broken
        return {}
    found: dict[str, list[str]] = {}
    for name, info in infos:
        for key, value in sorted(getattr(info, "defaults", {}).items()):
            found.setdefault(key, []).append(f"{name}: {value}")
    return found


def _default_text(key: str, default: Any, by_dataset: dict[str, list[str]]) -> str:
    """`` (default: 100)``, or, where datasets set their own, what each uses."""
    if default in (None, []):
        return ""
    own = by_dataset.get(key)
    if not own:
        return f" (default: {default})"
    return f" (default: the dataset's, {', '.join(own)}; else {default})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per run-spec key (``--update-period`` for ``update_period``), plus I/O."""
    spec_group = parser.add_argument_group("run spec (defaults: the dataset's, else the paper's)")
    by_dataset = dataset_defaults()
    for key, field in FIELDS.items():
        flag = "--" + key.replace("_", "-")
        default_text = _default_text(key, field.default, by_dataset)
        kwargs: dict[str, Any] = {"dest": key, "default": None, "help": field.help + default_text}
        if field.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.type == "choice":
            kwargs["choices"] = field.choices
        elif field.type == "fractions":
            kwargs["type"] = _fractions
            kwargs["metavar"] = "F,F"
        elif field.type.startswith("components:"):
            kwargs["action"] = "append"
            kwargs["metavar"] = "NAME"
            kwargs["help"] += " (repeat the option, or separate names with commas)"
        elif field.type in _TYPES:
            kwargs["type"] = _TYPES[field.type]
        else:
            kwargs["metavar"] = "NAME[k=v]"
        spec_group.add_argument(flag, **kwargs)
    io = parser.add_argument_group("execution")
    io.add_argument(
        "--paper-faithful",
        action="store_true",
        help="reproduce the paper code's behaviour: "
        + ", ".join(f"{k}={v}" for k, v in PAPER_FIDELITY.items())
        + ", growth random -> random_bernoulli, criterion set -> set_paper",
    )
    io.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    io.add_argument(
        "--engine",
        default="single",
        help="training engine (see `dstbench plugins`): single (masked dense tensors) or "
        "sparse (Linear layers hold only their active weights: time falls with density); "
        "default: single",
    )
    io.add_argument(
        "--data-root",
        default=None,
        help="data directory (default: $DSTBENCH_DATA or ~/.cache/dstbench/data)",
    )
    io.add_argument(
        "--download", action="store_true", help="allow datasets to download missing files"
    )
    io.add_argument("--output", "-o", default=None, help="write the JSON result record here")
    io.add_argument(
        "--json", action="store_true", help="print the whole record as JSON instead of a summary"
    )


def split_names(text: str) -> list[str]:
    """``"magnitude,mest[lam=0.1,k=2]"`` -> ``["magnitude", "mest[lam=0.1,k=2]"]``: commas
    separate names, except inside brackets."""
    names, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(text[start:i].strip())
            start = i + 1
    names.append(text[start:].strip())
    return [name for name in names if name]


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The raw spec given on the command line (unset options left to the defaults); a list
    option takes its names repeated or comma-separated (``--compare-criteria a,b``)."""
    raw = {key: getattr(args, key) for key in FIELDS if getattr(args, key) is not None}
    for key, field in FIELDS.items():
        if field.type.startswith("components:") and key in raw:
            raw[key] = [name for given in raw[key] for name in split_names(given)]
    return apply_paper_fidelity(raw) if args.paper_faithful else raw


def summary_line(record: dict[str, Any]) -> str:
    """One line: status, what ran, the headline metrics, density, updates and time."""
    spec = record["spec"]
    metrics = record["metrics"]
    parts = [f"{record['status']:<8}", describe_spec(spec)]
    accuracy = accuracy_text(metrics)
    if accuracy is not None:
        parts.append(accuracy)
    density = record["density"]
    if density.get("achieved") is not None:
        parts.append(f"density {density['achieved']:.4f} (target {density['target']:.4f})")
    parts.append(f"{record['topology']['updates']} updates")
    parts.append(f"{record['timings'].get('total_seconds', 0.0):.1f}s")
    if record["status"] in ("diverged", "invalid"):
        parts.append(f"reason: {record.get('reason')}")
    if record["status"] == "failed" and record.get("error"):
        parts.append(f"{record['error']['type']}: {record['error']['message']}")
    return " | ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Check the device and the output, train, print the summary, write the record."""
    warn_plugin_failures()
    check_device(args.device)
    if args.output:
        # Before training: a result lost to a bad --output after an hour of training is worse.
        check_output_file(args.output)
        check_writable_dir(Path(args.output).parent)
    record = execute(
        spec_from_args(args),
        device=args.device,
        data_root=args.data_root,
        download=args.download,
        engine=args.engine,
    )
    if args.output:
        write_record(args.output, record)
    error = record.get("error") or {}
    if record["status"] == "failed" and error.get("user_error") and not args.json:
        raise DstbenchError(error["message"])  # one line, not a summary repeating it
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True))
    else:
        line = summary_line(record)
        print(line + (f" -> {args.output}" if args.output else ""))
    if record["status"] == "failed" and error.get("user_error"):
        raise DstbenchError(error["message"])
    if record["status"] == "failed":
        sys.stderr.write(error.get("traceback", ""))
    return 0 if record["status"] == "ok" else 1
