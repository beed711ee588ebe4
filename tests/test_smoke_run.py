"""The issue's first command, end to end through the Python API."""

from __future__ import annotations

import dstbench


def test_digits_magnitude_gradient_run_reaches_high_accuracy_at_exact_density():
    record = dstbench.execute(
        {
            "model": "mlp",
            "dataset": "digits",
            "criterion": "magnitude",
            "growth": "gradient",
            "density": 0.1,
            "epochs": 30,
            "seed": 0,
        }
    )
    assert record["status"] == "ok", record.get("error")
    assert record["metrics"]["test_accuracy"] > 0.9
    assert abs(record["density"]["achieved"] - 0.1) < 1e-3
    assert record["topology"]["updates"] == 24
    assert record["topology"]["pruned"] == record["topology"]["grown"] > 0
