"""Reproducible figures: matplotlib's Agg canvas, no pyplot, PNG without a date stamp."""

from __future__ import annotations

import io
from typing import Any


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure on an Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any) -> bytes:
    """The figure as PNG bytes; the same figure always gives the same bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def svg_bytes(figure: Any) -> bytes:
    """The figure as SVG bytes (vector, for papers), without a date or creator stamp.

    Call it under ``matplotlib.rc_context({"svg.hashsalt": ...})`` for byte-stable ids.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def palette(labels: list[str]) -> dict[str, str]:
    """A fixed colour per label, in order (tab10, or tab20 beyond ten labels)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: _hex(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _hex(rgba: tuple[float, float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])
