"""Suite expansion: cartesian products, baselines, exclude, parameter sweeps, setups."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dstbench.contracts.spec import spec_hash
from dstbench.engine.spec import PAPER_FIDELITY, normalize_spec
from dstbench.suite.loader import build_suite, load_suite

GRID = {
    "model": "mlp",
    "dataset": "digits",
    "densities": [0.05, 0.1, 0.2],
    "criteria": ["magnitude", "set", "snip"],
    "growth": ["random", "gradient"],
    "seeds": [0, 1],
    "baselines": ["dense", "static"],
}


def build(registry, **data):
    return build_suite(data, registry, path=Path("test.toml"))


def methods(suite):
    return Counter(c.spec["method"] for c in suite.cells)


def test_grid_expands_to_the_product_plus_baselines(registry):
    suite = build(registry, **GRID)
    assert methods(suite) == {"dst": 3 * 2 * 3 * 2, "static": 3 * 2, "dense": 2}
    assert len({c.run_id for c in suite.cells}) == len(suite.cells) == 36 + 6 + 2
    dst = [c.spec for c in suite.cells if c.spec["method"] == "dst"]
    combos = {(s["criterion"]["name"], s["growth"]["name"], s["density"], s["seed"]) for s in dst}
    assert len(combos) == 36
    # baselines carry no DST component; dense is density 1 whatever the grid says
    static = [c.spec for c in suite.cells if c.spec["method"] == "static"]
    assert all(s["criterion"] is None and s["growth"] is None for s in static)
    assert sorted({s["density"] for s in static}) == [0.05, 0.1, 0.2]
    dense = [c.spec for c in suite.cells if c.spec["method"] == "dense"]
    assert [s["density"] for s in dense] == [1.0, 1.0]


def test_run_id_is_the_hash_of_the_normalized_spec_and_shared_across_suites(registry):
    small = build(registry, **GRID)
    bigger = build(registry, **{**GRID, "densities": [0.05, 0.1, 0.2, 0.3], "name": "other"})
    for cell in small.cells:
        assert cell.run_id == spec_hash(cell.spec)
        assert cell.spec == normalize_spec(cell.spec, registry)
    assert {c.run_id for c in small.cells} < {c.run_id for c in bigger.cells}
    # the same run written by hand (defaults left out) has the same id
    by_hand = normalize_spec(
        {
            "model": "mlp",
            "dataset": "digits",
            "criterion": "snip",
            "growth": "random",
            "density": 0.1,
            "seed": 1,
        },
        registry,
    )
    assert spec_hash(by_hand) in {c.run_id for c in small.cells}


def test_seeds_run_outermost(registry):
    suite = build(registry, **GRID)
    seeds = [c.spec["seed"] for c in suite.cells]
    assert seeds == sorted(seeds)  # every seed-0 run before any seed-1 run


def test_dataset_defaults_then_global_defaults_fill_unset_keys(registry):
    suite = build(registry, model="mlp", dataset="digits", densities=0.1, seeds=3)
    (cell,) = suite.cells
    assert cell.spec["epochs"] == 30  # digits' default
    assert cell.spec["update_period"] == 50  # digits' default
    assert cell.spec["criterion"]["name"] == "magnitude"  # the global default
    assert cell.spec["seed"] == 3
    assert suite.name == "test"  # the file's stem


def test_exclude_removes_exactly_the_matching_dst_cells(registry):
    suite = build(registry, **GRID, exclude=[{"criterion": "set", "growth": "random"}])
    assert methods(suite) == {"dst": 36 - 3 * 2, "static": 6, "dense": 2}
    assert not [
        c
        for c in suite.cells
        if c.spec["method"] == "dst"
        and c.spec["criterion"]["name"] == "set"
        and c.spec["growth"]["name"] == "random"
    ]
    assert suite.warnings == []


def test_exclude_accepts_lists_plural_keys_and_methods(registry):
    suite = build(
        registry,
        **GRID,
        exclude=[{"criteria": ["set", "snip"], "densities": 0.05}, {"method": "static", "seed": 1}],
    )
    # 2 criteria x 2 growth x 1 density x 2 seeds removed; static seed 1 (3 densities) removed
    assert methods(suite) == {"dst": 36 - 8, "static": 3, "dense": 2}


def test_exclude_that_matches_nothing_is_reported(registry):
    suite = build(registry, **GRID, exclude=[{"density": 0.5}])
    assert len(suite.cells) == 44
    assert suite.warnings == ["test.toml: exclude[0]: matches no run of the suite"]


def test_exclude_matches_component_parameters_when_given(registry):
    suite = build(
        registry,
        model="mlp",
        dataset="digits",
        criteria=[{"name": "mest", "lam": [0.1, 1.0, 10.0]}],
        exclude=[{"criterion": "mest[lam=10]"}],
    )
    assert sorted(c.spec["criterion"]["params"]["lam"] for c in suite.cells) == [0.1, 1.0]


def test_component_parameter_sweeps_in_both_spellings(registry):
    suite = build(
        registry,
        model="mlp",
        dataset="digits",
        criteria=["mest[lam=0.01]", {"name": "mest", "lam": [0.1, 1]}, "mest[lam=[2,3]]"],
    )
    lams = [c.spec["criterion"]["params"]["lam"] for c in suite.cells]
    assert lams == [0.01, 0.1, 1.0, 2.0, 3.0]
    assert all(isinstance(v, float) for v in lams)


def test_hyperparameters_sweep_and_list_valued_keys_do_not(registry):
    suite = build(
        registry,
        model="mlp",
        dataset="digits",
        lr=[0.01, 0.1],
        lr_milestones=[0.3, 0.6],
        nesterov=[True, False],
    )
    assert len(suite.cells) == 4
    assert {c.spec["lr"] for c in suite.cells} == {0.01, 0.1}
    assert all(c.spec["lr_milestones"] == [0.3, 0.6] for c in suite.cells)
    swept = build(registry, model="mlp", dataset="digits", lr_milestones=[[0.5], [0.25, 0.75]])
    assert [c.spec["lr_milestones"] for c in swept.cells] == [[0.5], [0.25, 0.75]]


def test_setups_inherit_the_top_level_and_override_it(registry):
    suite = build(
        registry,
        dataset="digits",
        epochs=5,
        densities=[0.1],
        criteria=["magnitude"],
        setups=[
            {"model": "mlp"},
            {"model": "mlp[hidden=[32]]", "epochs": 7, "densities": [0.2, 0.3]},
        ],
    )
    got = sorted(
        (tuple(c.spec["model"]["params"]["hidden"]), c.spec["epochs"], c.spec["density"])
        for c in suite.cells
    )
    assert got == [((32,), 7, 0.2), ((32,), 7, 0.3), ((256, 128), 5, 0.1)]


def test_setup_excludes_apply_to_their_setup_only(registry):
    suite = build(
        registry,
        dataset="digits",
        densities=[0.1, 0.2],
        exclude=[{"density": 0.2, "seed": 0}],
        setups=[
            {"model": "mlp", "seeds": [0, 1]},
            {"model": "mlp[hidden=[32]]", "seeds": [0, 1], "exclude": [{"seed": 1}]},
        ],
    )
    got = sorted(
        (len(c.spec["model"]["params"]["hidden"]), c.spec["density"], c.spec["seed"])
        for c in suite.cells
    )
    # the top-level exclude removes (0.2, seed 0) in both setups; the second drops seed 1 too
    assert got == [(1, 0.1, 0), (2, 0.1, 0), (2, 0.1, 1), (2, 0.2, 1)]


def test_identical_cells_of_two_setups_run_once(registry):
    suite = build(
        registry,
        dataset="digits",
        densities=[0.1],
        setups=[{"model": "mlp"}, {"model": "mlp[hidden=[256, 128]]"}],
    )
    assert len(suite.cells) == 1


def test_paper_fidelity_sets_the_paper_code_behaviour_unless_overridden(registry):
    suite = build(registry, model="mlp", dataset="digits", fidelity="paper", mask_init="exact")
    (cell,) = suite.cells
    for key, value in PAPER_FIDELITY.items():
        assert cell.spec[key] == (value if key != "mask_init" else "exact")


def test_static_baseline_ignores_dst_only_sweeps(registry):
    suite = build(
        registry,
        model="mlp",
        dataset="digits",
        densities=[0.1],
        update_period=[25, 50, 100],
        baselines=["static"],
    )
    assert methods(suite) == {"dst": 3, "static": 1}


def test_load_suite_reads_toml(registry, tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(
        'name = "mini"\nmodel = "mlp"\ndataset = "digits"\ndensities = [0.1, 0.2]\n'
        'jobs = 3\nexecutor = {name = "local", threads = 1}\n'
    )
    suite = load_suite(path, registry)
    assert suite.name == "mini"
    assert suite.jobs == 3
    assert suite.executor == {"name": "local", "params": {"threads": 1}}
    assert [c.spec["density"] for c in suite.cells] == [0.1, 0.2]
    assert suite.text == path.read_text()


SUITES = Path(__file__).resolve().parent.parent / "suites"


@pytest.mark.parametrize("shipped", sorted(SUITES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_suites_say_what_they_reproduce(shipped):
    head = shipped.read_text().split("\n\n")[0]
    assert head.startswith("#") and len(head) > 80, "start with a comment block on the setup"
