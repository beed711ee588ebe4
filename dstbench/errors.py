"""Error types.

:class:`DstbenchError` and its subclasses are *user* errors (a bad name, a bad value, a missing
file). The CLI prints them as one line and exits with status 2, without a traceback. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DstbenchError(Exception):
    """A user error: printed as one line by the CLI, exit status 2."""


class PluginError(DstbenchError):
    """A plugin is broken, or two plugins disagree (e.g. both register the same name)."""


class UnknownComponentError(DstbenchError):
    """A component name (criterion, growth method, model, ...) is not registered."""


class ParameterError(DstbenchError):
    """A component parameter is unknown or has the wrong type."""


class SpecError(DstbenchError):
    """A run specification has a missing, unknown or out-of-range value.

    ``key`` is the key path the error is about (``"criterion"``, ``"compare_criteria"``) or
    None, and ``detail`` the message without it, so that callers that know where the key came
    from (a suite file's line, a command-line flag) can say so without parsing the text.
    """

    def __init__(self, detail: str, *, key: str | None = None) -> None:
        super().__init__(f"{key}: {detail}" if key else detail)
        self.key = key
        self.detail = detail


class SuiteError(DstbenchError):
    """A suite file cannot be read or validated."""


class DataError(DstbenchError):
    """A dataset cannot be found or read."""


class CriterionError(DstbenchError):
    """A criterion or growth method returned something the harness cannot use."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    """Format valid choices for an error message: ``'a', 'b', 'c'``."""
    items = sorted(choices)
    return ", ".join(repr(c) for c in items) if items else "(none registered)"
