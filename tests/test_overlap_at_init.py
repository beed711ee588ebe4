"""Overlap-at-initialisation runs (the paper's Fig. 6a) from end to end: their records are
trusted although they have no test accuracy, the analysis reads them (and says when they are
missing), the batched engine trains them one by one beside the runs it stacks, and
``dstbench status`` tells a suite's setups apart when they share a model and dataset."""

from __future__ import annotations

import io
import json

import pytest
import torch
from handmade import write_results

from dstbench.analysis.jaccard import missing_overlap
from dstbench.batched.engine import train_group
from dstbench.batched.grouping import make_groups
from dstbench.cli import main
from dstbench.contracts.record import seal
from dstbench.engine.single import execute
from dstbench.engine.spec import build_spec
from dstbench.leaderboard.data import load_results
from dstbench.plugins import get_plugins
from dstbench.suite.loader import load_suite
from dstbench.suite.store import record_problem

COMPARED = ["magnitude", "set", "snip", "random"]
AT_INIT = {
    "model": "mlp",
    "dataset": "digits",
    "density": 0.2,
    "jaccard_at_init": True,
    "compare_criteria": COMPARED,
    "prune_fraction": 0.25,
    "growth": "random",
}
TRAINED = {"model": "mlp", "dataset": "digits", "density": 0.2, "epochs": 1, "update_period": 5}


def test_an_at_init_record_is_trusted_without_a_test_accuracy():
    record = execute(AT_INIT)
    assert record["status"] == "ok" and record["metrics"]["test_accuracy"] is None
    assert record_problem(seal(record), record["run_id"]) is None
    # an at-init record without its overlap has no result at all: still untrusted
    emptied = {**record, "analysis": {"overlap": []}}
    assert record_problem(seal(emptied), record["run_id"]) == (
        "status ok but metrics.test_accuracy is None"
    )
    # a trained run still needs its accuracy
    trained = execute(TRAINED)
    trained["metrics"]["test_accuracy"] = None
    assert record_problem(seal(trained), trained["run_id"]) == (
        "status ok but metrics.test_accuracy is None"
    )


def test_analyze_overlap_reads_a_record_made_by_dstbench_run(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    args = ["run", "--model", "mlp", "--dataset", "digits", "--density", "0.2"]
    args += ["--jaccard-at-init", *(a for c in COMPARED for a in ("--compare-criteria", c))]
    args += ["--prune-fraction", "0.25", "--output", str(folder / "x.json")]
    assert main(args) == 0, capsys.readouterr().err
    assert main(["analyze", "overlap", str(folder), "-o", str(tmp_path / "o.md")]) == 0
    text = (tmp_path / "o.md").read_text()
    assert "## mlp on digits, d=0.2, at initialisation" in text
    assert "is missing" not in text
    record = json.loads((folder / "x.json").read_text())
    value = record["analysis"]["overlap"][0]["pooled"]["magnitude|set"]
    pooled = text.split("Pooled over layers:", 1)[1]
    magnitude = next(line for line in pooled.splitlines() if line.startswith("| magnitude "))
    assert f"{value:.3f}" in magnitude


JACCARD_LIKE = """
name = "j"
model = "mlp"
dataset = "digits"
compare_criteria = ["magnitude", "snip", "random"]
seeds = [0, 1]

[[setups]]
jaccard_at_init = true
densities = [0.2]
growth = "random"
criteria = ["magnitude"]

[[setups]]
densities = [0.2]
criteria = ["magnitude", "snip"]
"""


def test_missing_at_init_part_is_said(tmp_path, registry):
    def outcome(spec):
        return "failed" if spec.get("jaccard_at_init") else 0.9

    root = write_results(tmp_path, registry, JACCARD_LIKE, outcome)
    lines = missing_overlap(load_results(root).entries)
    assert lines == [
        "**The overlap at initialisation (Fig. 6a) is missing:** 2 of its 2 runs have no "
        "overlap to show (2 failed).",
        "**The overlap during training is missing:** 4 of its 4 runs have no overlap to show "
        "(4 no overlap recorded).",
    ]


def test_status_shows_setups_that_share_a_model_and_dataset_apart(tmp_path, registry, capsys):
    path = tmp_path / "j.toml"
    path.write_text(JACCARD_LIKE)
    suite = load_suite(path, registry)
    assert sorted({c.setup for c in suite.cells}) == [
        "mlp/digits jaccard_at_init=false",
        "mlp/digits jaccard_at_init=true",
    ]
    assert main(["status", str(path), "--output", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("mlp/digits")]
    assert len(rows) == 2, out


def test_a_lone_setup_keeps_its_plain_label(tmp_path, registry):
    path = tmp_path / "one.toml"
    path.write_text('model = "mlp"\ndataset = "digits"\ndensities = [0.1]\nepochs = 1\n')
    assert {c.setup for c in load_suite(path, registry).cells} == {"mlp/digits"}


@pytest.mark.parametrize("order", ["init-first", "mixed"])
def test_batched_engine_falls_back_per_run_for_at_init_runs(order):
    plugins = get_plugins()
    at_init = [{**AT_INIT, "seed": s} for s in (0, 1)]
    trained = [{**TRAINED, "criterion": c, "seed": 0} for c in ("magnitude", "snip")]
    raws = [*at_init, *trained] if order == "init-first" else [trained[0], *at_init, trained[1]]
    specs = [build_spec(raw, plugins.registry) for raw in raws]
    stream = io.StringIO()
    trained = train_group(specs, plugins=plugins, device=torch.device("cpu"), stream=stream)
    records = [r.to_json() for r in trained]
    assert [r["run_id"] for r in records] == [s.run_id for s in specs]
    assert [r["status"] for r in records] == ["ok"] * 4
    for raw, record in zip(raws, records, strict=True):
        if raw.get("jaccard_at_init"):
            assert record["provenance"]["engine"] == "single"
            assert record_problem(seal(record), record["run_id"]) is None
        else:
            assert record["provenance"]["engine"] == "batched"
            assert record["metrics"]["test_accuracy"] > 0.1
    assert "jaccard_at_init runs train nothing" in stream.getvalue()
    # the suite engine groups them apart in the first place
    groups = make_groups(specs, lambda s: s, 0, 1)
    assert sorted(len(g) for g in groups) == [2, 2]
    assert all(len({bool(s.jaccard_at_init) for s in g}) == 1 for g in groups)


SIX = ["set", "magnitude", "mest", "snip", "rsensitivity", "random"]


def test_overlap_figure_is_readable_at_fifteen_pairs(tmp_path):
    from dstbench.analysis.jaccard import overlap_figure, overlap_groups

    folder = tmp_path / "six"
    folder.mkdir()
    for seed in (0, 1):
        spec = {**TRAINED, "compare_criteria": SIX, "seed": seed}
        record = execute(spec)
        assert record["status"] == "ok"
        (folder / f"{record['run_id']}.json").write_text(json.dumps(seal(record)))
    (group,) = overlap_groups(load_results(folder).entries, "six")
    figure = overlap_figure(group)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    evolution = next(ax for ax in figure.axes if ax.get_legend() is not None)
    legend = evolution.get_legend().get_window_extent(renderer)
    plot = evolution.get_window_extent(renderer)
    assert legend.x0 >= plot.x1  # beside the curves, never on them
    lines = [line for line in evolution.get_lines() if line.get_label() != "chance ζ/(2−ζ)"]
    assert len(lines) == 15
    assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == 15
    # a heatmap for the pooled sets and one per layer, each with all 36 cells annotated
    layers = len(group.scopes) - 1
    heatmaps = [ax for ax in figure.axes if ax.images]
    assert len(heatmaps) == 1 + layers
    assert all(len(ax.texts) == 36 for ax in heatmaps)
    assert all(text.get_fontsize() >= 6.5 for ax in heatmaps for text in ax.texts)


def test_the_leaderboard_leaves_at_init_runs_out_of_its_tables(tmp_path, registry):
    from dstbench.leaderboard import render_leaderboard

    def outcome(spec):
        return "ok" if spec.get("jaccard_at_init") else 0.9 + 0.01 * spec["seed"]

    root = write_results(tmp_path, registry, JACCARD_LIKE, outcome)
    markdown = render_leaderboard(root).markdown
    assert "2 overlap-at-initialisation run(s) (`jaccard_at_init`" in markdown
    assert "jaccard_at_init=" not in markdown  # no row or label of theirs
    table = markdown.split("| method", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    assert [line.split("|")[1].strip() for line in table] == ["magnitude", "snip"]


def test_setups_told_apart_by_their_model_parameters(tmp_path, registry):
    path = tmp_path / "two.toml"
    path.write_text(
        'dataset = "digits"\ndensities = [0.1]\nepochs = 1\n'
        '[[setups]]\nmodel = "mlp[hidden=[32]]"\n[[setups]]\nmodel = "mlp[hidden=[64]]"\n'
    )
    labels = sorted({c.setup for c in load_suite(path, registry).cells})
    assert labels == ["mlp/digits model=mlp[hidden=[32]]", "mlp/digits model=mlp[hidden=[64]]"]
