"""Leaderboard statistics: t intervals in cells, paired differences to a reference row,
rank intervals, ties within the interval, chance-level marks, merged directories."""

from __future__ import annotations

import math
import shutil

import pytest
from scipy import stats as sp
from test_leaderboard import make_results, table_rows

from dstbench.cli import main
from dstbench.leaderboard import render_leaderboard

GRADIENT = "### mlp on digits, growth: gradient"


def _half(values):
    return sp.t.ppf(0.975, len(values) - 1) * sp.sem(values)


def test_cells_show_the_t_interval_by_default(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    markdown = render_leaderboard(results).markdown
    rows = table_rows(markdown, GRADIENT)
    # mest[lam=1.0] at d=0.2: 96, 97, 98 -> 97 ± t(0.975, 2)·1/√3
    assert rows["mest[lam=1.0]"][1] == f"**97.00 ± {_half([96, 97, 98]):.2f}**"
    assert rows["static"][0] == f"82.00 ± {_half([80, 82, 84]):.2f}"
    # two seeds: a t(1) interval this wide holds every other mean of the column (‡)
    assert rows["magnitude"][0] == f"**91.00 ± {_half([90, 92]):.2f}** (2/3) ‡"
    assert "95% Student-t confidence interval" in markdown


def test_paired_differences_to_the_reference_row(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    markdown = render_leaderboard(results).markdown
    section = markdown.split(GRADIENT, 1)[1].split("Paired difference to magnitude", 1)[1]
    lines = section.split("\n\n", 2)[1].splitlines()
    rows = {
        c[0]: c[1:] for c in ([x.strip() for x in line.strip("|").split("|")] for line in lines[2:])
    }
    # mest[lam=1.0] - magnitude at d=0.2, seeds 0-2: 1, 2, 3 -> +2.00 ± 2.48, not significant
    assert rows["mest[lam=1.0]"][1] == f"+2.00 ± {_half([1, 2, 3]):.2f} (n=3)"
    # static - magnitude at d=0.1, seeds 0-1: -10, -10 -> exactly -10, significant
    assert rows["static"][0] == "-10.00 ± 0.00 ▼ (n=2)"
    assert "magnitude" not in rows  # the reference itself


def test_another_reference_row_and_an_unknown_one(tmp_path, registry, capsys):
    results, _ = make_results(tmp_path, registry)
    markdown = render_leaderboard(results, reference="static").markdown
    assert "Paired difference to static" in markdown
    assert main(["leaderboard", str(results), "--reference", "magnitud"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no row 'magnitud'" in err[0] and "did you mean 'magnitude'" in err[0]


def test_std_and_bootstrap_stats_and_byte_identical_output(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    std = table_rows(render_leaderboard(results, stat="std").markdown, GRADIENT)
    assert std["static"][0] == "82.00 ± 2.00"
    boot = render_leaderboard(results, stat="bootstrap").markdown
    assert boot == render_leaderboard(results, stat="bootstrap").markdown
    assert "percentile-bootstrap" in boot
    # the bootstrap interval of 80, 82, 84 lies within the range of the values
    cell = table_rows(boot, GRADIENT)["static"][0]
    assert cell.startswith("82.00 ± ") and 0 < float(cell.split("± ")[1]) <= 2.0
    with pytest.raises(SystemExit) as exit_info:
        main(["leaderboard", str(results), "--stat", "sem"])
    assert exit_info.value.code == 2


def test_rank_column_has_a_bootstrap_interval(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    rows = table_rows(render_leaderboard(results).markdown, GRADIENT)
    # static is last at d=0.1 and shares the last place... always between 3.5 and 4
    assert rows["static"][2] == "4.00 [3.5, 4.0]"
    low, high = (float(x) for x in rows["magnitude"][2].split("[")[1].rstrip("]").split(", "))
    assert 1.0 <= low <= 1.75 <= high <= 4.0


def test_chance_level_runs_are_marked(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    from dstbench.io import read_json
    from dstbench.suite import RunStore

    for path in (results / "runs").glob("*.json"):
        record = read_json(path)
        spec = record["spec"]
        if spec["method"] == "static" and spec["density"] == 0.1 and spec["seed"] == 0:
            record["health"] = {"at_chance": True, "chance_accuracy": 0.1}
            RunStore(results).write(record)  # as dstbench writes it: with its digest
    rows = table_rows(render_leaderboard(results).markdown, GRADIENT)
    assert rows["static"][0].endswith(" †1")
    assert not rows["static"][1].endswith("†1")


def test_several_directories_are_merged_by_run_id(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    whole = table_rows(render_leaderboard(results, stat="std").markdown, GRADIENT)
    first, second = tmp_path / "machine1", tmp_path / "machine2"
    records = sorted((results / "runs").glob("*.json"))
    for index, path in enumerate(records):
        # every record in one of the two, a third of them in both
        for target in [first, second][: 2 if index % 3 == 0 else 1] if index % 2 else [second]:
            (target / "runs").mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / "runs" / path.name)
    merged = render_leaderboard([first, second], tmp_path / "lb.md", stat="std").markdown
    rows = table_rows(merged, GRADIENT)

    # no manifest: (k/n) counts the records found, so compare the values only
    def values(cells):
        return [c.split(" (")[0].removesuffix(" ‡") for c in cells][:2]

    for label, cells in whole.items():
        assert values(rows[label]) == values(cells)
    assert "machine1 + machine2" in merged
    assert main(["leaderboard", str(first), str(tmp_path / "nowhere")]) == 2


def test_best_is_decided_by_the_interval_not_by_the_last_digit(tmp_path, registry):
    text = """
name = "close"
model = "mlp"
dataset = "digits"
densities = [0.1]
criteria = ["magnitude", "snip", "random"]
growth = "gradient"
seeds = [0, 1, 2, 3]
"""
    accuracy = {
        "magnitude": [90.0, 91.0, 92.0, 93.0],
        "snip": [90.1, 90.9, 92.2, 92.9],  # within noise of magnitude
        "random": [80.0, 81.0, 82.0, 83.0],  # clearly worse on every seed
    }
    from handmade import write_results

    root = write_results(
        tmp_path,
        registry,
        text,
        lambda spec: accuracy[spec["criterion"]["name"]][spec["seed"]] / 100,
    )
    rows = table_rows(render_leaderboard(root).markdown, GRADIENT)
    assert rows["magnitude"][0].startswith("**") and rows["snip"][0].startswith("**")
    assert not rows["random"][0].startswith("**")
    assert math.isclose(float(rows["magnitude"][0].strip("*").split(" ±")[0]), 91.5)
