"""What a run records for the analyses: mask movement, training health, the overlap at
initialisation, the fidelity block, and the paper's SET under paper fidelity."""

from __future__ import annotations

import pytest
import torch

from dstbench.contracts.spec import spec_hash
from dstbench.engine.health import health_block
from dstbench.engine.single import execute
from dstbench.engine.spec import apply_paper_fidelity, normalize_spec
from dstbench.sparse.movement import mask_movement
from dstbench.suite.loader import load_suite

TINY = {"model": "mlp", "dataset": "digits", "epochs": 2, "update_period": 10, "density": 0.1}


def test_mask_movement_of_hand_built_masks():
    start = {"a": torch.tensor([1, 1, 1, 1, 0, 0], dtype=torch.bool)}
    end = {"a": torch.tensor([1, 0, 0, 1, 1, 1], dtype=torch.bool)}
    start["b"] = torch.tensor([1, 0], dtype=torch.bool)
    end["b"] = torch.tensor([1, 0], dtype=torch.bool)
    moved = mask_movement(start, end)
    assert moved["layers"] == {"a": 0.5, "b": 1.0}
    assert moved["retained"] == pytest.approx(3 / 5)  # (2 + 1) of (4 + 1) initially active


def test_health_flags_a_run_that_never_leaves_chance():
    flat = health_block(10, [0.09, 0.11, None, 0.18])
    assert flat["chance_accuracy"] == 0.1 and flat["threshold"] == pytest.approx(0.19)
    assert flat["at_chance"] is True
    assert health_block(10, [0.1, 0.2])["at_chance"] is False
    assert health_block(2, [0.54])["at_chance"] is True  # binary: chance 0.5, threshold 0.55


def test_a_run_records_movement_health_and_fidelity():
    record = execute({**TINY, "criterion": "magnitude"})
    assert record["status"] == "ok"
    moved = record["mask_movement"]
    assert set(moved["layers"]) == set(record["density"]["layers"])
    assert 0.0 < moved["retained"] < 1.0  # ~16 updates at ζ₀ = 0.5 move the mask
    assert record["health"]["at_chance"] is False
    assert record["health"]["best_accuracy"] >= record["metrics"]["test_accuracy"]
    assert record["fidelity"] == {"mode": "default", "substitutions": {}}
    static = execute({**TINY, "method": "static"})
    assert static["mask_movement"]["retained"] == 1.0


def test_a_collapsed_run_is_flagged():
    # a learning rate this small leaves the untrained network at chance level
    record = execute({**TINY, "epochs": 1, "lr": 1e-9, "momentum": 0.0})
    assert record["status"] == "ok"
    assert record["health"]["at_chance"] is True
    assert record["metrics"]["test_accuracy"] < record["health"]["threshold"]


def test_overlap_at_initialisation(registry):
    compared = ["magnitude", "set", "snip", "random"]
    spec = {**TINY, "density": 1.0, "jaccard_at_init": True, "compare_criteria": compared,
            "prune_fraction": 0.25, "growth": "random"}  # fmt: skip
    record = execute(spec)
    assert record["status"] == "ok"
    assert record["topology"]["updates"] == 0 and record["metrics"]["test_accuracy"] is None
    (entry,) = record["analysis"]["overlap"]
    assert entry["step"] == 0 and entry["prune_fraction"] == 0.25
    # density 1: every layer is full and is pruned all the same (no growth follows)
    assert set(entry["layers"]) == set(record["density"]["layers"])
    pooled = entry["pooled"]
    # random pruned sets overlap at the chance level ζ/(2−ζ) = 1/7; magnitude and the corrected
    # SET both remove the smallest magnitudes, so they nearly coincide
    assert pooled["magnitude|random"] == pytest.approx(0.25 / 1.75, abs=0.02)
    assert pooled["magnitude|set"] > 0.9
    assert record["mask_movement"]["retained"] == 1.0  # nothing was applied
    alone = execute({**TINY, "jaccard_at_init": True, "compare_criteria": ["magnitude"]})
    assert alone["status"] == "failed" and alone["error"]["user_error"]
    assert alone["error"]["message"] == "jaccard_at_init: needs at least two compare_criteria"


def test_the_new_key_leaves_existing_run_ids_alone(registry):
    plain = normalize_spec(TINY, registry)
    assert "jaccard_at_init" not in plain
    explicit = normalize_spec({**TINY, "jaccard_at_init": False}, registry)
    assert spec_hash(explicit) == spec_hash(plain)
    at_init = normalize_spec(
        {**TINY, "jaccard_at_init": True, "compare_criteria": ["magnitude", "snip"]}, registry
    )
    assert at_init["jaccard_at_init"] is True


def test_paper_fidelity_swaps_set_for_set_paper_and_records_it(registry, tmp_path):
    raw = apply_paper_fidelity({**TINY, "criterion": "set", "growth": "random"})
    assert raw["criterion"] == "set_paper" and raw["growth"] == "random_bernoulli"
    assert apply_paper_fidelity({**TINY, "criterion": "snip"})["criterion"] == "snip"
    record = execute(raw)
    assert record["status"] == "ok"
    assert record["spec"]["criterion"]["name"] == "set_paper"
    assert record["fidelity"]["mode"] == "paper"
    assert record["fidelity"]["substitutions"] == {
        "mask_init": {"default": "exact", "paper": "bernoulli"},
        "update_order": {"default": "uniform", "paper": "paper"},
        "reset_momentum": {"default": True, "paper": False},
        "validation": {"default": "split", "paper": "paper"},
        "growth": {"default": "random", "paper": "random_bernoulli"},
        "criterion": {"default": "set", "paper": "set_paper"},
    }
    # the paper code's SET prunes about half of a layer at each update, whatever ζ
    first = record["topology"]["per_update"][0]
    assert first["pruned"] > first["requested"]
    (tmp_path / "s.toml").write_text(
        'model = "mlp"\ndataset = "digits"\nfidelity = "paper"\n'
        'criteria = ["set", "magnitude"]\ncompare_criteria = ["set", "magnitude"]\n'
    )
    suite = load_suite(tmp_path / "s.toml", registry)
    names = sorted(c.spec["criterion"]["name"] for c in suite.cells)
    assert names == ["magnitude", "set_paper"]
    # the paper's overlap analysis used the corrected SET: compare_criteria keeps it
    assert [c["name"] for c in suite.cells[0].spec["compare_criteria"]] == ["set", "magnitude"]
