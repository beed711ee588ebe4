"""Every registered criterion × growth method: a short run holds the invariants and is
deterministic for a fixed seed."""

from __future__ import annotations

import pytest

import dstbench
from dstbench.plugins import get_plugins

REGISTRY = get_plugins().registry
SPEC = {
    "model": "mlp",
    "dataset": "digits",
    "epochs": 1,
    "update_period": 10,
    "density": 0.15,
    "seed": 1,
}


@pytest.mark.parametrize("growth", sorted(REGISTRY.growth))
@pytest.mark.parametrize("criterion", sorted(REGISTRY.criteria))
def test_short_run_holds_invariants_and_is_deterministic(criterion, growth):
    spec = {**SPEC, "criterion": criterion, "growth": growth}
    first, second = dstbench.execute(spec), dstbench.execute(spec)
    assert first["status"] == "ok", first.get("reason") or first.get("error", {}).get("message")
    assert first["topology"]["updates"] == 4
    if REGISTRY.growth[growth].exact:
        assert abs(first["density"]["achieved"] - 0.15) < 1e-3
        assert all(u["pruned"] == u["grown"] for u in first["topology"]["per_update"])
    for key in ("test_accuracy", "final_train_loss"):
        assert first["metrics"][key] == second["metrics"][key]
    assert first["topology"]["per_update"] == second["topology"]["per_update"]
