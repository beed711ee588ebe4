"""Conformance checks of prune-fraction schedules and layer-wise density distributions."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from dstbench.conformance._collect import Collector, error_text
from dstbench.conformance.report import Check
from dstbench.conformance.selection import metadata_checks
from dstbench.errors import DstbenchError
from dstbench.registry import ComponentInfo

#: (total_steps, initial ζ) pairs every schedule is evaluated on, at every step.
SCHEDULE_CASES: tuple[tuple[int, float], ...] = ((1, 0.5), (100, 0.5), (1000, 0.3), (250, 1.0))

#: Weight shapes of an MLP and of a small ConvNet (first and last layers included).
DISTRIBUTION_SHAPES: dict[str, dict[str, tuple[int, ...]]] = {
    "MLP": {"0.weight": (256, 64), "1.weight": (128, 256), "2.weight": (10, 128)},
    "ConvNet": {
        "conv1.weight": (16, 3, 3, 3),
        "conv2.weight": (32, 16, 3, 3),
        "fc.weight": (10, 512),
    },
}
DISTRIBUTION_DENSITIES: tuple[float, ...] = (0.01, 0.1, 0.5, 1.0)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_schedule(info: ComponentInfo, *, params: Mapping[str, Any] | None = None) -> list[Check]:
    """ζ(step) is a finite number in [0, 1] at every step, the same on every call, and
    positive somewhere (a schedule that is always 0 never updates the topology).
    """
    resolved = info.resolve_params(params)
    c = Collector()
    in_range = "returns a number in [0, 1] at every step"
    same = "is deterministic"
    positive = "allows topology updates (ζ > 0 at some step)"
    for total, initial in SCHEDULE_CASES:
        case = f"total_steps={total}, initial={initial}"
        values = []
        for step in range(1, total + 1):
            try:
                value = info.fn(step, total, initial, **resolved)
            except Exception as exc:
                c.fail(
                    in_range,
                    f"{case}, step {step}: {error_text(exc)}",
                    "fn(step, total_steps, initial, **params) must work for every step from 1 "
                    "to total_steps, including total_steps = 1",
                )
                break
            if not _is_number(value) or not math.isfinite(value) or not 0.0 <= value <= 1.0:
                c.fail(
                    in_range,
                    f"{case}, step {step}: returned {value!r}",
                    "return a float in [0, 1]: the fraction of each layer's active weights "
                    "to prune (0 means no update at this step); clamp it if needed",
                )
                break
            values.append(float(value))
        else:
            c.ok(in_range)
            again = [float(info.fn(s, total, initial, **resolved)) for s in range(1, total + 1)]
            if again == values:
                c.ok(same)
            else:
                c.fail(
                    same,
                    f"{case}: a second pass over the steps gave other values",
                    "compute ζ from (step, total_steps, initial, params) alone, with no state "
                    "kept between calls",
                )
            if any(v > 0 for v in values):
                c.ok(positive)
            else:
                c.fail(
                    positive,
                    f"{case}: ζ is 0 at every step",
                    "return ζ > 0 on the steps where the topology should change",
                )
    return metadata_checks(info) + c.checks()


def check_distribution(
    info: ComponentInfo, *, params: Mapping[str, Any] | None = None
) -> list[Check]:
    """Every layer gets a density in [0, 1] and the total matches the global density, on an
    MLP's and a ConvNet's shapes at densities from 0.01 to 1.
    """
    from dstbench.api import layer_densities

    resolved = info.resolve_params(params)
    c = Collector()
    meets = "meets the global density with layer densities in [0, 1]"
    same = "is deterministic"
    for model, shapes in DISTRIBUTION_SHAPES.items():
        for density in DISTRIBUTION_DENSITIES:
            case = f"{model} shapes at density {density}"
            try:
                first = layer_densities(info, shapes, density, **resolved)
            except DstbenchError as exc:
                c.fail(
                    meets,
                    f"{case}: {exc}",
                    "return {layer: density} for every layer in shapes, each in [0, 1], with "
                    "sum(density_l * numel_l) == density * sum(numel_l); when a layer is "
                    "capped at 1, give its excess to the others (see the built-in 'erk')",
                )
                continue
            except Exception as exc:
                c.fail(
                    meets,
                    f"{case}: {error_text(exc)}",
                    "fn(shapes, density, **params) must handle 2-D (Linear) and 4-D (Conv) "
                    "shapes and any density in (0, 1]",
                )
                continue
            c.ok(meets)
            second = layer_densities(info, shapes, density, **resolved)
            if first == second:
                c.ok(same)
            else:
                c.fail(
                    same,
                    f"{case}: two calls gave different densities",
                    "compute densities from (shapes, density, params) alone",
                )
    return metadata_checks(info) + c.checks()
