"""What an analysis returns, and how it is written: a markdown file and its PNG figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dstbench.io import write_bytes_atomic, write_text_atomic
from dstbench.leaderboard.table import slug


@dataclass(frozen=True)
class Report:
    """An analysis' output: markdown, and PNG figures it links to by file name."""

    markdown: str
    #: File name (relative to the markdown) -> PNG bytes.
    figures: dict[str, bytes] = field(default_factory=dict)


def write_report(report: Report, output: str | Path) -> Path:
    """Write the figures next to ``output``, then the markdown (each atomically)."""
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    for name, data in report.figures.items():
        write_bytes_atomic(target.parent / name, data)
    write_text_atomic(target, report.markdown)
    return target


def figure_name(stem: str, *parts: str) -> str:
    """``<stem>-<part>-<part>.png`` with file-name-safe parts."""
    return "-".join([stem, *(slug(p) for p in parts)]) + ".png"
