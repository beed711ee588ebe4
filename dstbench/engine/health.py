"""Training-health flags: a run whose accuracy never leaves chance level.

Random pruning with random growth at a very low density, a too-large learning rate, a model
whose sparse layers are cut off: such runs finish ``ok`` with an accuracy near guessing, and a
mean over seeds hides the collapse. The engine flags them in the record (``health``), and the
leaderboard marks the cells that hold one.

Chance level is ``1 / num_classes`` (one output unit: two classes). A run is *at chance* when
no accuracy it ever reached (training or validation, any epoch, and the final test accuracy)
exceeds chance by more than :data:`MARGIN`, a tenth of the way from chance to perfect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Share of the distance from chance to 100% a run must cover to count as having learnt.
MARGIN = 0.1


def chance_accuracy(num_classes: int) -> float:
    """Accuracy of guessing uniformly among ``num_classes`` (a binary output counts as two)."""
    return 1.0 / max(num_classes, 2)


def health_block(num_classes: int, accuracies: Iterable[float | None]) -> dict[str, Any]:
    """The record's ``health`` block from every accuracy the run reached."""
    chance = chance_accuracy(num_classes)
    threshold = chance + MARGIN * (1.0 - chance)
    seen = [float(a) for a in accuracies if a is not None]
    best = max(seen) if seen else None
    return {
        "chance_accuracy": chance,
        "threshold": threshold,
        "best_accuracy": best,
        "at_chance": best is not None and best <= threshold,
    }


def at_chance(record: Mapping[str, Any]) -> bool:
    """True when the record is flagged as never having left chance level."""
    health = record.get("health")
    return isinstance(health, Mapping) and health.get("at_chance") is True
