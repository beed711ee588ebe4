"""Reading a suite file: TOML text to a dict, with one-line errors that name the file.

``tomllib`` is in the standard library from Python 3.11; on 3.10 the ``tomli`` backport
(same API) is used, declared as a conditional dependency.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dstbench.errors import SuiteError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


def read_suite_text(path: str | Path) -> str:
    """The text of a suite file.

    :raises SuiteError: when the file is missing, a directory, or not UTF-8 text.
    """
    file = Path(path)
    if not file.exists():
        raise SuiteError(f"{file}: no such suite file")
    if file.is_dir():
        raise SuiteError(f"{file}: is a directory; expected a suite .toml file")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SuiteError(f"{file}: cannot read: {exc.strerror or exc}") from None


def parse_suite_text(text: str, where: str) -> dict[str, Any]:
    """Parse TOML ``text``; ``where`` (the file name) prefixes any error.

    :raises SuiteError: on a TOML syntax error, with its line and column.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise SuiteError(f"{where}: TOML syntax error: {exc}") from None
    except RecursionError:
        raise SuiteError(f"{where}: values nested too deeply to read") from None
    if _depth(data) > MAX_DEPTH:
        msg = f"{where}: values nested more than {MAX_DEPTH} levels deep; a suite needs a few"
        raise SuiteError(msg)
    return data


#: Deepest nesting of tables and arrays a suite may use (a suite needs about 5).
MAX_DEPTH = 32


def _depth(value: Any) -> int:
    """How deeply ``value``'s tables and arrays nest (iteratively: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest
