"""Gathering per-case outcomes into one :class:`Check` per check name."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field

import torch

import dstbench
from dstbench.conformance.report import Check

#: Frames in these directories are never the plugin's own code.
_LIBRARY_DIRS = tuple(
    os.path.dirname(module.__file__) + os.sep for module in (torch, dstbench) if module.__file__
)


@dataclass
class _Entry:
    fails: list[str] = field(default_factory=list)
    fix: str = ""
    skips: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Collector:
    """Collects outcomes of the same check over several cases (layers, seeds, steps).

    A check fails if any case fails; its detail is the first failure (and how many more).
    Checks are reported in the order they were first seen.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @property
    def n_failures(self) -> int:
        """Failed cases so far (to tell whether a step added any)."""
        return sum(len(entry.fails) for entry in self._entries.values())

    def _entry(self, name: str) -> _Entry:
        return self._entries.setdefault(name, _Entry())

    def ok(self, name: str, note: str = "") -> None:
        """One case passed (``note``: a fact worth showing in verbose output)."""
        entry = self._entry(name)
        if note:
            entry.notes.append(note)

    def fail(self, name: str, detail: str, fix: str) -> None:
        """One case failed."""
        entry = self._entry(name)
        entry.fails.append(detail)
        entry.fix = entry.fix or fix

    def skip(self, name: str, detail: str) -> None:
        """One case could not be checked."""
        self._entry(name).skips.append(detail)

    def checks(self) -> list[Check]:
        """One check per name."""
        result = []
        for name, entry in self._entries.items():
            if entry.fails:
                more = len(entry.fails) - 1
                detail = entry.fails[0] + (
                    f" (and {more} more case{'s' * (more > 1)})" if more else ""
                )
                result.append(Check(name, "fail", detail, entry.fix))
            elif entry.skips and not entry.notes:
                result.append(Check(name, "skip", entry.skips[0]))
            else:
                result.append(Check(name, "pass", "; ".join(entry.notes)))
        return result


def error_text(exc: BaseException) -> str:
    """``TypeError: message (at my_plugin.py:12)``: the error and the innermost frame outside
    torch and dstbench, which is where the plugin author should look.
    """
    text = f"{type(exc).__name__}: {exc}".strip()
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS)]
    if own:
        frame = own[-1]
        text += f" (at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name})"
    return text
