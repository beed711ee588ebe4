"""Results of conformance checks, and how they are printed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check on one component (or on a plugin as a whole)."""

    #: Short, stable name of the check, e.g. ``"scores have the weight's shape"``.
    name: str
    status: Status
    #: What was observed (why it failed or was skipped; extra facts for a pass).
    detail: str = ""
    #: How to fix a failure, addressed to the plugin author.
    fix: str = ""

    @property
    def failed(self) -> bool:
        """True for a failed check."""
        return self.status == "fail"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def passed(name: str, detail: str = "") -> Check:
    """A passing check."""
    return Check(name, "pass", detail)


def failed(name: str, detail: str, fix: str) -> Check:
    """A failing check, with what happened and how to fix it."""
    return Check(name, "fail", detail, fix)


def skipped(name: str, detail: str) -> Check:
    """A check that could not run (e.g. a dataset whose files are absent)."""
    return Check(name, "skip", detail)


@dataclass
class ComponentReport:
    """Every check run on one registered component (or on a plugin's lifecycle hooks)."""

    kind: str
    name: str
    plugin: str
    checks: list[Check] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``criterion 'taylor'``."""
        return f"{self.kind} {self.name!r}" if self.name else self.kind

    @property
    def failures(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.failed]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass
class PluginReport:
    """The conformance report of one plugin: plugin-level checks, then each component's."""

    plugin: str
    #: Where it comes from: ``"dstbench-criteria-extra 0.1.0"`` or a module/file.
    source: str
    checks: list[Check] = field(default_factory=list)
    components: list[ComponentReport] = field(default_factory=list)

    def all_checks(self) -> Iterable[Check]:
        """Plugin-level checks, then every component's."""
        yield from self.checks
        for component in self.components:
            yield from component.checks

    @property
    def failures(self) -> list[Check]:
        """Every failed check."""
        return [c for c in self.all_checks() if c.failed]

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``dstbench check-plugin --json``)."""
        return {
            "plugin": self.plugin,
            "source": self.source,
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
            "components": [c.as_dict() for c in self.components],
        }


def _check_lines(check: Check, indent: str) -> list[str]:
    mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[check.status]
    line = f"{indent}{mark}  {check.name}"
    if check.detail:
        line += f": {check.detail}"
    lines = [line]
    if check.failed and check.fix:
        lines.append(f"{indent}      fix: {check.fix}")
    return lines


def format_report(report: PluginReport, *, verbose: bool = False) -> str:
    """Human-readable report: one line per component, every failed or skipped check with its
    fix (every check with ``verbose``), and a summary line.
    """
    lines = [f"plugin {report.plugin!r} ({report.source})"]
    passed = sum(c.status == "pass" for c in report.checks)
    if passed and not any(c.failed for c in report.checks):
        # Counted in the total below: the per-line counts add up to it.
        lines.append(f"  ok    the plugin itself: {passed} check{'s' * (passed != 1)} passed")
    for check in report.checks:
        if verbose or check.status != "pass":
            lines.extend(_check_lines(check, "  "))
    for component in report.components:
        total = len(component.checks)
        n_failed = len(component.failures)
        n_skipped = sum(c.status == "skip" for c in component.checks)
        if n_failed:
            summary = f"FAIL  {component.label}: {n_failed} of {total} checks failed"
        else:
            n_passed = total - n_skipped
            summary = f"ok    {component.label}: {n_passed} check{'s' * (n_passed != 1)} passed"
            if n_skipped:
                summary += f", {n_skipped} skipped"
        lines.append(f"  {summary}")
        for check in component.checks:
            # Checks skipped because of an earlier failure would only repeat it.
            shown = check.failed or (check.status == "skip" and not n_failed)
            if verbose or shown:
                lines.extend(_check_lines(check, "      "))
    total = sum(1 for _ in report.all_checks())
    n_failed = len(report.failures)
    n_components = len(report.components)
    if n_failed:
        where = []
        bad_components = sum(not c.ok for c in report.components)
        if bad_components:
            where.append(f"{bad_components} of {n_components} components")
        if any(c.failed for c in report.checks):
            where.append("the plugin itself")
        lines.append(
            f"{n_failed} of {total} checks failed, in {' and '.join(where)}, of plugin "
            f"{report.plugin!r}; see the fixes above"
        )
    else:
        noun = "component" if n_components == 1 else "components"
        lines.append(f"all {total} checks passed ({n_components} {noun})")
    return "\n".join(lines)
