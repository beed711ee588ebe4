"""The setup block of a leaderboard section: what a reviewer needs to reproduce its numbers.

One row per item (model, dataset, epochs, batch size, optimizer, LR schedule, ΔT, ζ schedule,
layer-density distribution, fidelity mode, engine, seeds), read from the section's runs: the
specs for what was asked, the records for how it ran (fidelity mode, engine). A value that
differs between the section's runs is listed with every value it takes (the rows of the
tables then say which run had which); an item no finished run reports yet reads ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tabulate import tabulate

from dstbench.labels import value_text
from dstbench.leaderboard.data import Entry

Spec = Mapping[str, Any]


def _optimizer(spec: Spec) -> str:
    text = f"SGD, lr {value_text(spec.get('lr'))}, momentum {value_text(spec.get('momentum'))}"
    if spec.get("nesterov"):
        text += " (Nesterov)"
    return text + f", weight decay {value_text(spec.get('weight_decay'))}"


def _lr_schedule(spec: Spec) -> str:
    milestones = spec.get("lr_milestones") or []
    if not milestones:
        return "constant"
    at = ", ".join(f"{m:g}" for m in milestones)
    return f"× {value_text(spec.get('lr_gamma'))} at {at} of training"


def _zeta(spec: Spec) -> str:
    if spec.get("method") != "dst":
        return ""
    return f"ζ₀ = {value_text(spec.get('prune_fraction'))}, {value_text(spec.get('schedule'))}"


def _dst_only(key: str) -> Callable[[Spec], str]:
    def read(spec: Spec) -> str:
        return value_text(spec.get(key)) if spec.get("method") == "dst" else ""

    return read


def _sparse_only(key: str) -> Callable[[Spec], str]:
    def read(spec: Spec) -> str:
        return value_text(spec.get(key)) if spec.get("method") != "dense" else ""

    return read


#: Item -> how a spec gives it ("" when it does not apply to that run, e.g. ΔT of a dense run).
_FROM_SPEC: tuple[tuple[str, Callable[[Spec], str]], ...] = (
    ("model", lambda s: value_text(s.get("model"))),
    ("dataset", lambda s: value_text(s.get("dataset"))),
    ("epochs", lambda s: value_text(s.get("epochs"))),
    ("batch size", lambda s: value_text(s.get("batch_size"))),
    ("optimizer", _optimizer),
    ("LR schedule", _lr_schedule),
    ("update period ΔT (iterations)", _dst_only("update_period")),
    ("prune fraction ζ (schedule)", _zeta),
    ("layer densities", _sparse_only("distribution")),
)


def _record_value(entry: Entry, path: tuple[str, ...]) -> str:
    value: Any = entry.record
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value in (None, "") else str(value)


def _values(texts: Sequence[str]) -> str:
    distinct = sorted({t for t in texts if t})
    return "; ".join(distinct) if distinct else "unknown"


def _seeds(entries: Sequence[Entry]) -> str:
    seeds = sorted({int(e.spec["seed"]) for e in entries if e.spec.get("seed") is not None})
    if not seeds:
        return "unknown"
    listed = ", ".join(str(s) for s in seeds)
    return f"{len(seeds)} ({listed})"


def setup_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """``[item, value]`` rows describing the runs of one leaderboard section."""
    specs = [e.spec for e in entries]
    rows = [[item, _values([read(s) for s in specs])] for item, read in _FROM_SPEC]
    finished = [e for e in entries if e.record is not None]
    modes = [_record_value(e, ("fidelity", "mode")) for e in finished]
    engines = [_record_value(e, ("provenance", "engine")) for e in finished]
    engine = _values(engines)
    if ";" in engine:
        engine += " (mixed: engines agree statistically, not run by run)"
    rows += [["fidelity mode", _values(modes)], ["engine", engine]]
    rows.append(["seeds", _seeds(entries)])
    return rows


def setup_markdown(entries: Sequence[Entry]) -> str:
    """The setup block as a two-column markdown table."""
    return tabulate(
        setup_rows(entries), headers=["setup", ""], tablefmt="github", disable_numparse=True
    )
