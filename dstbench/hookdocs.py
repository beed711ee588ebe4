"""Render the hook reference of ``docs/plugins.md`` from :mod:`dstbench.hookspecs`.

The hook docstrings are the single source of truth; the markdown between the BEGIN/END
markers is generated. ``python -m dstbench.hookdocs docs/plugins.md`` rewrites it;
``--check`` exits 1 when it is stale (the test suite runs the same check).
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dstbench import hookspecs
from dstbench.contracts.components import KINDS
from dstbench.io import write_text_atomic

BEGIN = (
    "<!-- BEGIN HOOK REFERENCE: generated from dstbench/hookspecs.py by "
    "`python -m dstbench.hookdocs docs/plugins.md`; edit the docstrings, not this -->"
)
END = "<!-- END HOOK REFERENCE -->"

_ROLE = re.compile(r":(?:class|func|mod|data|meth|attr):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_PARAM = re.compile(r"^:param (\w+):\s*(.*)$")


def hook_specs() -> list[tuple[str, Callable[..., Any]]]:
    """Every hook spec, in the order of hookspecs.py."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    specs = [
        (name, fn)
        for name, fn in vars(hookspecs).items()
        if name.startswith("dstbench_") and callable(fn) and hasattr(fn, marker)
    ]
    return sorted(specs, key=lambda item: inspect.getsourcelines(item[1])[1])


def _markdown(text: str) -> str:
    return _LITERAL.sub(r"`\1`", _ROLE.sub(r"`\1`", text))


def _split_doc(doc: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Body paragraphs (markdown lines) and ``(param, description)`` pairs."""
    body: list[str] = []
    params: list[tuple[str, str]] = []
    for line in inspect.cleandoc(doc).splitlines():
        match = _PARAM.match(line)
        if match:
            params.append((match.group(1), match.group(2)))
        elif params and line.startswith(" ") and line.strip():  # a :param: continued
            name, text = params[-1]
            params[-1] = (name, f"{text} {line.strip()}")
        elif not params:
            body.append(line)
    while body and not body[-1].strip():
        body.pop()
    # Converted as one text: an inline literal may span two lines.
    return _markdown("\n".join(body)).splitlines(), [(n, _markdown(t)) for n, t in params]


def _signature(name: str, fn: Callable[..., Any]) -> str:
    args = ", ".join(
        f"{p.name}: {p.annotation}" if p.annotation is not inspect.Parameter.empty else p.name
        for p in inspect.signature(fn).parameters.values()
    )
    return f"{name}({args})"


def _options_table() -> list[str]:
    lines = [
        "| kind | hook | `fn` is called as | `register()` options besides `description`, "
        "`params` |",
        "| --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        positional = ", ".join(kind.positionals)
        call = f"`fn({positional}{', ' if positional else ''}**params)`"
        options = sorted(kind.options)
        if "selects" in options:
            call += f"; with `selects=True`: `fn({positional}, n, **params)`"
        shown = ", ".join(f"`{o}`" for o in options) or "-"
        lines.append(f"| {kind.name} | `{kind.hook}` | {call} | {shown} |")
    return lines


def render_hook_reference() -> str:
    """The generated markdown (without the markers)."""
    specs = hook_specs()
    groups = {
        "Registration hooks": [s for s in specs if s[0].startswith("dstbench_register_")],
        "Run lifecycle hooks": [s for s in specs if not s[0].startswith("dstbench_register_")],
    }
    lines = [
        "Every registration hook receives `register`; what `register(name, fn, ...)` expects "
        "depends on the kind:",
        "",
        *_options_table(),
        "",
    ]
    for title, members in groups.items():
        lines += [f"### {title}", ""]
        for name, fn in members:
            body, params = _split_doc(fn.__doc__ or "")
            lines += [f"#### `{name}`", "", "```python", _signature(name, fn), "```", ""]
            lines += [*body, ""]
            if params:
                lines += ["Parameters:", ""]
                lines += [f"- `{param}`: {text}" for param, text in params]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _replace_section(text: str, section: str, path: Path) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        msg = f"{path}: the markers {BEGIN!r} ... {END!r} are missing"
        raise SystemExit(msg)
    return text[: start + len(BEGIN)] + "\n\n" + section + "\n" + text[end:]


def update(path: str | Path, *, check: bool = False) -> bool:
    """Regenerate the reference section of ``path``; with ``check``, only compare.

    :returns: True when the file was already up to date.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    new = _replace_section(text, render_hook_reference(), path)
    if new == text:
        return True
    if not check:
        write_text_atomic(path, new)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dstbench.hookdocs [--check] docs/plugins.md``."""
    parser = argparse.ArgumentParser(prog="python -m dstbench.hookdocs", description=__doc__)
    parser.add_argument("path", help="the markdown file holding the markers")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    fresh = update(args.path, check=args.check)
    if args.check and not fresh:
        sys.stderr.write(
            f"{args.path}: the hook reference is stale; run python -m dstbench.hookdocs "
            f"{args.path}\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
