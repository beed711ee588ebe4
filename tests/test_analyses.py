"""The analyses on hand-made records: Jaccard (hand-built masks, known overlaps, chance level),
sweeps, winners, compare, export, the dry-run estimate, and every command's bad input."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from handmade import write_results
from scipy import stats as sp

from dstbench import DstbenchError, hookimpl
from dstbench.analysis.jaccard import chance_jaccard, overlap_groups, overlap_report
from dstbench.cli import main
from dstbench.leaderboard.data import load_results
from dstbench.sparse.overlap import jaccard, overlap

# --- Jaccard ------------------------------------------------------------------------------


def _mask(numel, positions):
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[list(positions)] = True
    return mask


def test_jaccard_of_hand_built_masks():
    a, b = _mask(10, range(0, 4)), _mask(10, range(2, 6))  # ∩ = {2, 3}, ∪ = {0..5}
    assert jaccard(a, b) == pytest.approx(2 / 6)
    assert jaccard(a, a) == 1.0 and jaccard(_mask(10, []), _mask(10, [])) == 1.0
    sets = {
        "x": {"l1": a, "l2": _mask(20, range(10))},
        "y": {"l1": b, "l2": _mask(20, range(5, 15))},
    }
    result = overlap(sets)
    assert result["layers"]["l1"]["x|y"] == pytest.approx(2 / 6)
    assert result["layers"]["l2"]["x|y"] == pytest.approx(5 / 15)
    # pooled: intersections and unions summed, (2 + 5) / (6 + 15)
    assert result["pooled"]["x|y"] == pytest.approx(7 / 21)


def test_chance_level_is_zeta_over_two_minus_zeta_and_matches_simulation():
    assert chance_jaccard([(50, 100)]) == pytest.approx(0.5 / 1.5)
    assert chance_jaccard([(25, 100)]) == pytest.approx(0.25 / 1.75)
    rng = np.random.default_rng(0)
    trials = []
    for _ in range(2000):
        a, b = np.zeros(200, bool), np.zeros(200, bool)
        a[rng.choice(200, 40, replace=False)] = True
        b[rng.choice(200, 40, replace=False)] = True
        trials.append((a & b).sum() / (a | b).sum())
    assert np.mean(trials) == pytest.approx(chance_jaccard([(40, 200)]), abs=0.005)


JACCARD_SUITE = """
name = "jac"
model = "mlp"
dataset = "digits"
densities = [0.1]
criteria = ["magnitude"]
seeds = [0, 1]
compare_criteria = ["magnitude", "snip", "random"]
"""

#: seed -> per update (step, {pair: J}) on two layers (layer values; pooled = mean here).
UPDATES = {
    0: [
        (50, {"magnitude|random": 0.2, "magnitude|snip": 0.6, "random|snip": 0.2}),
        (100, {"magnitude|random": 0.4, "magnitude|snip": 0.8, "random|snip": 0.2}),
    ],
    1: [(50, {"magnitude|random": 0.5, "magnitude|snip": 0.7, "random|snip": 0.3})],
}


def _with_overlap(record):
    seed = record["spec"]["seed"]
    record["density"]["layers"] = {"0.weight": {"target": 100}, "2.weight": {"target": 100}}
    record["topology"]["per_update"] = [
        {"step": step, "prune_fraction": 0.5} for step, _ in UPDATES[seed]
    ]
    record["analysis"] = {
        "overlap": [
            {"step": step, "pooled": pairs, "layers": {"0.weight": pairs, "2.weight": pairs}}
            for step, pairs in UPDATES[seed]
        ]
    }


def test_overlap_report_averages_over_updates_then_runs(tmp_path, registry):
    root = write_results(tmp_path, registry, JACCARD_SUITE, lambda s: 0.9, extra=_with_overlap)
    results = load_results(root)
    (group,) = overlap_groups(results.entries, "jac")
    matrix, chance = group.matrix("pooled")
    # magnitude|random: run 0 averages (0.2 + 0.4) / 2 = 0.3, run 1 is 0.5 -> 0.4
    assert matrix["magnitude|random"].estimate == pytest.approx(0.4)
    half = sp.t.ppf(0.975, 1) * sp.sem([0.3, 0.5])
    assert matrix["magnitude|random"].half_width == pytest.approx(half)
    assert matrix["magnitude|snip"].estimate == pytest.approx((0.7 + 0.7) / 2)
    # ζ = 0.5 on 100 active weights per layer: 50 pruned -> 1/3
    assert chance is not None and chance.estimate == pytest.approx(1 / 3)
    steps, means, chance_steps = group.evolution()
    assert steps == [50, 100]
    assert means["magnitude|random"] == {50: pytest.approx(0.35), 100: pytest.approx(0.4)}
    assert chance_steps == {50: pytest.approx(1 / 3), 100: pytest.approx(1 / 3)}
    report = overlap_report(results, stem="overlap")
    # columns in the order of compare_criteria: magnitude, snip, random
    assert "| magnitude |           1 |  0.700 |    0.400 |" in report.markdown
    assert "## mlp on digits, d=0.1, during training" in report.markdown
    assert "*chance ζ/(2−ζ)*" in report.markdown and "0.333" in report.markdown
    (name,) = report.figures
    assert report.figures[name][:4] == b"\x89PNG"
    assert overlap_report(results, stem="overlap") == report  # deterministic, figures too


def test_analyze_overlap_writes_markdown_and_heatmap(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, JACCARD_SUITE, lambda s: 0.9, extra=_with_overlap)
    out = tmp_path / "out" / "overlap.md"
    assert main(["analyze", "overlap", str(root), "-o", str(out)]) == 0
    assert out.read_text().startswith("# Pruned-set overlap (Jaccard): jac")
    assert (out.parent / "overlap-mlp-on-digits-d-0-1-during-training.png").read_bytes()[
        :4
    ] == b"\x89PNG"


# --- bad input: one line, exit 2 -----------------------------------------------------------


def _one_line_error(capsys, *argv):
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dstbench: error: "), err
    return err[0]


SIMPLE = """
name = "simple"
model = "mlp"
dataset = "digits"
densities = [0.1]
criteria = ["magnitude", "snip"]
seeds = [0, 1]
"""


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "overlap"],
        ["analyze", "winners"],
        ["analyze", "update-period"],
        ["analyze", "sweep", "update_period"],
        ["export"],
        ["leaderboard"],
    ],
)
def test_missing_or_empty_directories(tmp_path, capsys, command):
    assert "no such results directory" in _one_line_error(capsys, *command, str(tmp_path / "x"))
    assert "no run records found" in _one_line_error(capsys, *command, str(tmp_path))


def test_compare_bad_directories(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9)
    assert "no such results directory" in _one_line_error(
        capsys, "compare", str(root), str(tmp_path / "x")
    )
    assert "no run records found" in _one_line_error(capsys, "compare", str(tmp_path), str(root))


def test_analysis_specific_bad_input(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9)
    assert "compare_criteria" in _one_line_error(capsys, "analyze", "overlap", str(root))
    assert "takes one value only" in _one_line_error(capsys, "analyze", "update-period", str(root))
    error = _one_line_error(capsys, "analyze", "sweep", "update_perod", str(root))
    assert "unknown key 'update_perod'" in error and "did you mean 'update_period'" in error
    error = _one_line_error(capsys, "analyze", "overlp", str(root))
    assert "unknown analysis 'overlp'" in error and "did you mean 'overlap'" in error
    assert "expected KEY DIR" in _one_line_error(capsys, "analyze", "sweep", str(root))


# --- sweeps -------------------------------------------------------------------------------

PERIODS = """
name = "periods"
model = "mlp"
dataset = "digits"
densities = [0.1, 0.2]
criteria = ["magnitude", "snip"]
update_period = [25, 100, 400]
seeds = [0, 1, 2]
baselines = ["static"]
"""


def _period_accuracy(spec):
    base = 0.8 if spec["method"] == "static" else 0.9 - (spec["update_period"] / 4000)
    return base + 0.01 * spec["seed"] + (0.02 if spec["density"] == 0.2 else 0.0)


def test_update_period_table_and_figure(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, PERIODS, _period_accuracy)
    assert main(["analyze", "update-period", str(root)]) == 0
    text = (root / "update-period.md").read_text()
    section = text.split("### mlp on digits, growth: gradient, d=0.1", 1)[1]
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in section.split("\n\n")[1].splitlines()[2:]
        )
    }
    half = sp.t.ppf(0.975, 2) * sp.sem([0.0, 1.0, 2.0])  # seeds add 0, 1, 2 points
    # ΔT = 25: 0.9 - 25/4000 = 89.375 % + 1 point -> 90.38 (2 decimals)
    assert rows["magnitude"][0] == f"{89.375 + 1:.2f} ± {half:.2f}"
    assert rows["magnitude"][3] == "–"  # DST rows are swept
    assert rows["static"][:3] == ["–", "–", "–"] and rows["static"][3] == f"81.00 ± {half:.2f}"
    # the paired test against static, as in the leaderboard: the seeds cancel out exactly
    paired = section.split("Paired difference to static", 1)[1].split("\n\n")[1].splitlines()
    snip = [c.strip() for c in paired[3].strip("|").split("|")]
    assert snip[0] == "snip"
    assert snip[2:] == ["+7.50 ± 0.00 ▲ (n=3)", "+0.00 ± 0.00 (n=3)"]  # ΔT = 100, 400
    assert (root / "update-period-mlp-on-digits.png").read_bytes()[:4] == b"\x89PNG"


def test_leaderboard_plots_against_the_swept_key(tmp_path, registry):
    from dstbench.leaderboard import render_leaderboard

    root = write_results(tmp_path, registry, PERIODS, _period_accuracy)
    board = render_leaderboard(root)
    assert board.sweeps == {"leaderboard-mlp-on-digits.png": "update_period"}
    assert "test accuracy vs update_period](leaderboard-mlp-on-digits.png)" in board.markdown
    assert board.png("leaderboard-mlp-on-digits.png")[:4] == b"\x89PNG"


def test_sweep_of_a_component_parameter(tmp_path, registry):
    text = """
name = "lam"
model = "mlp"
dataset = "digits"
densities = [0.1]
criteria = ["magnitude", {name = "mest", lam = [0.1, 1.0, 10.0]}]
seeds = [0, 1]
"""

    def accuracy(spec):
        lam = spec["criterion"]["params"].get("lam")
        return 0.85 if lam is None else 0.9 - lam / 100

    root = write_results(tmp_path, registry, text, accuracy)
    assert main(["analyze", "sweep", "criterion.lam", str(root), "-o", str(tmp_path / "s.md")]) == 0
    text = (tmp_path / "s.md").read_text()
    assert "criterion.lam=0.1" in text and "criterion.lam=10" in text
    mest = next(line for line in text.splitlines() if line.startswith("| mest "))
    assert "89.90 ± 0.00" in mest and "80.00 ± 0.00" in mest


# --- winners ------------------------------------------------------------------------------

WINNERS = """
name = "win"
model = "mlp"
dataset = "digits"
densities = [0.05, 0.2]
criteria = ["magnitude", "snip", "random"]
growth = ["random", "gradient"]
seeds = [0, 1, 2]
baselines = ["static"]
"""


def _winner_accuracy(spec):
    if spec["method"] == "static":
        return 0.99  # baselines never compete
    name = spec["criterion"]["name"]
    noise = 0.001 * spec["seed"]
    if spec["density"] == 0.05:  # magnitude clearly best in both setups
        return {"magnitude": 0.9, "snip": 0.8, "random": 0.7}[name] + noise
    # d=0.2: magnitude and snip within noise under gradient growth; snip best under random
    if spec["growth"]["name"] == "gradient":
        return {"magnitude": 0.9 + noise, "snip": 0.9 + 0.002 * (2 - spec["seed"]), "random": 0.8}[
            name
        ]
    return {"magnitude": 0.85, "snip": 0.9, "random": 0.8}[name] + noise


def test_winners_counts_ties_within_the_interval(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, WINNERS, _winner_accuracy)
    assert main(["analyze", "winners", str(root)]) == 0
    text = (root / "winners.md").read_text()
    rows = {
        cells[0]: cells[1:]
        for cells in (
            [c.strip() for c in line.strip("|").split("|")]
            for line in text.split("| criterion", 1)[1].splitlines()[2:]
            if line.startswith("|")
        )
    }
    assert rows["magnitude"] == ["2", "0 (+1 tied)", "2 (+1 tied)"]
    assert rows["snip"] == ["0", "1 (+1 tied)", "1 (+1 tied)"]
    assert rows["random"] == ["0", "0", "0"]
    assert rows["*setups compared*"] == ["2", "2", "4"]
    assert "static" not in rows


def test_winners_across_several_directories(tmp_path, registry):
    first = write_results(tmp_path / "a", registry, WINNERS, _winner_accuracy)
    other = WINNERS.replace('name = "win"', 'name = "win2"').replace(
        'model = "mlp"', 'model = {name = "mlp", hidden = [32]}'
    )
    second = write_results(tmp_path / "b", registry, other, _winner_accuracy)
    out = tmp_path / "w.md"
    assert main(["analyze", "winners", str(first), str(second), "-o", str(out)]) == 0
    text = out.read_text()
    line = next(x for x in text.splitlines() if x.startswith("| *setups compared*"))
    assert [c.strip() for c in line.strip("|").split("|")][1:] == ["4", "4", "8"]


# --- compare ------------------------------------------------------------------------------


def test_compare_pairs_shared_run_ids_and_gates_regressions(tmp_path, registry, capsys):
    def before(spec):
        return 0.90 + 0.01 * spec["seed"]

    def after(spec):
        drop = 0.05 if spec["criterion"]["name"] == "snip" else 0.0
        return before(spec) - drop - 0.001 * spec["seed"]

    a = write_results(tmp_path / "a", registry, SIMPLE, before)
    b = write_results(tmp_path / "b", registry, SIMPLE, after)
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    snip = next(line for line in out.splitlines() if "| snip" in line)
    # paired over seeds 0, 1: differences -5.0 and -5.1 points
    half = sp.t.ppf(0.975, 1) * sp.sem([-5.0, -5.1])
    assert f"-5.05 ± {half:.2f} ▼" in snip and "paired" in snip
    assert main(["compare", str(a), str(b), "--fail-on-regression", "1"]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-on-regression", "6"]) == 0


def test_compare_lists_one_sided_cells_and_status_changes(tmp_path, registry, capsys):
    a = write_results(tmp_path / "a", registry, SIMPLE, lambda s: 0.9)
    wider = SIMPLE.replace("densities = [0.1]", "densities = [0.1, 0.2]")

    def after(spec):
        if spec["criterion"]["name"] == "snip" and spec["seed"] == 1 and spec["density"] == 0.1:
            return "failed"
        return 0.9

    b = write_results(tmp_path / "b", registry, wider, after)
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "c.md")]) == 0
    text = (tmp_path / "c.md").read_text()
    assert "## Only in B (2)" in text and "## Status changed (1)" in text
    (change,) = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.split("## Status changed", 1)[1].splitlines()
        if line.startswith("| ") and "snip" in line
    ]
    assert change[1:] == ["snip, d=0.1, seed 1", "ok", "failed"]


# --- export -------------------------------------------------------------------------------


def test_export_csv_jsonl_parquet(tmp_path, registry, capsys):
    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9 + 0.01 * s["seed"])
    assert main(["export", str(root)]) == 0
    with open(root / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert {r["spec.criterion"] for r in rows} == {"magnitude", "snip"}
    assert sorted(float(r["test_accuracy"]) for r in rows) == [0.9, 0.9, 0.91, 0.91]
    assert {"run_id", "status", "spec.distribution.power", "provenance.dstbench"} <= set(rows[0])
    assert main(["export", str(root), "--format", "jsonl", "-o", str(tmp_path / "r.jsonl")]) == 0
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [x["run_id"] for x in lines] == sorted(r["run_id"] for r in rows)
    assert main(["export", str(root), "--format", "parquet"]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(root / "runs.parquet")
    assert table.num_rows == 4 and table.column("spec.seed").type == "int64"
    assert table.column("test_accuracy").to_pylist() == [float(x["test_accuracy"]) for x in lines]


def test_parquet_without_pyarrow_is_a_one_line_hint(tmp_path, registry, capsys, monkeypatch):
    import sys

    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    error = _one_line_error(capsys, "export", str(root), "--format", "parquet")
    assert "pip install pyarrow" in error


# --- dry-run estimate ---------------------------------------------------------------------


def test_dry_run_estimates_compute_from_finished_records(tmp_path, registry, capsys):
    def timed(record):
        # the digits defaults: 30 epochs of 40 batches of 32
        record["timings"] = {"steps": 40 * 30, "total_seconds": 3.0, "seconds_per_step": 0.02}
        record["metrics"]["dense_macs_per_sample"] = 1000

    root = write_results(
        tmp_path, registry, SIMPLE, lambda s: 0.9 if s["seed"] == 0 else None, extra=timed
    )
    suite_file = tmp_path / "results.toml"
    text = suite_file.read_text() + "epochs = 2\n"
    suite_file.write_text(text)
    assert main(["suite", str(suite_file), "--dry-run", "-o", str(root), "-j", "2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("mlp/digits"))
    # 40 steps per epoch x 2 epochs; 1000 MACs x 32 samples x 80 steps = 2.56 M
    assert line.split()[5:10] == ["4", "4", "80", "2.56", "M"]
    # no record of this exact setup (epochs changed): seconds per step x steps = 1.6 s
    assert "1.6s" in line
    assert "estimated wall time of the runs to do: 3.2s with 2 worker(s)" in out


def test_dry_run_probes_a_setup_without_records(tmp_path, registry, capsys):
    from dstbench.contracts.data import DatasetContext, resolve_data_root
    from dstbench.engine.data import carve_validation

    (tmp_path / "s.toml").write_text(SIMPLE + "epochs = 3\nbatch_size = 64\n")
    assert main(["suite", str(tmp_path / "s.toml"), "--dry-run", "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("mlp/digits")).split()
    parts = registry.datasets["digits"].fn(
        DatasetContext(root=resolve_data_root(None), download=False, validation="split")
    )
    train, _ = carve_validation(parts.train, 0.1)
    steps = 3 * math.ceil(len(train) / 64)
    macs = (64 * 256 + 256 * 128 + 128 * 10) * 64 * steps  # the MLP's weights, per sample
    assert line[7] == str(steps)
    assert " ".join(line[8:10]) == f"{macs / 1e6:.3g} M"
    assert "unknown" in line  # no finished run: no wall time


# --- analyses as plugin components ---------------------------------------------------------


class _SeedsPlugin:
    """A third-party analysis: ok runs per seed."""

    @staticmethod
    def seeds(results, *, stem, metric: str = "test_accuracy"):
        """Ok runs per seed."""
        from dstbench.analysis.report import Report

        counts = {}
        for entry in results.entries:
            if entry.metric(metric) is not None:
                counts[entry.spec["seed"]] = counts.get(entry.spec["seed"], 0) + 1
        if not counts:
            raise DstbenchError(f"{results.title}: no run has {metric}")
        lines = [f"- seed {s}: {n}" for s, n in sorted(counts.items())]
        return Report(f"# {stem}\n\n" + "\n".join(lines) + "\n")

    @hookimpl
    def dstbench_register_analyses(self, register):
        register("seeds", self.seeds)


def test_hook_register_analyses(tmp_path, registry, use_plugins, capsys):
    use_plugins(("seeds-plugin", _SeedsPlugin()))
    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9 if s["seed"] == 0 else "failed")
    assert main(["analyze", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "seeds DIR..." in listing and "[seeds-plugin]" in listing
    assert "sweep KEY DIR..." in listing and "[builtin-analyses]" in listing
    out = tmp_path / "per-seed.md"
    assert main(["analyze", "seeds", str(root), "-o", str(out)]) == 0
    assert out.read_text() == "# per-seed\n\n- seed 0: 2\n"
    error = _one_line_error(capsys, "analyze", "seeds", str(root), "--param", "metric=nope")
    assert "no run has nope" in error
    error = _one_line_error(capsys, "analyze", "seeds", str(root), "--param", "metric_=x")
    assert "has no parameter 'metric_'" in error


def test_builtin_analyses_pass_the_conformance_kit():
    from dstbench.conformance import check_plugin

    report = check_plugin("builtin-analyses", train=False)
    assert report.ok, [c for comp in report.components for c in comp.checks if c.failed]
    assert {c.name for c in report.components} == {"overlap", "update-period", "winners", "sweep"}


def test_a_broken_analysis_fails_the_conformance_kit():
    from dstbench.conformance import check_plugin

    class Broken:
        @staticmethod
        def crash(results, *, stem):
            """Crashes."""
            raise KeyError("oops")

        @hookimpl
        def dstbench_register_analyses(self, register):
            register("crash", self.crash)

    report = check_plugin(Broken(), name="broken")
    (component,) = report.components
    failed = [c for c in component.checks if c.failed]
    assert [c.name for c in failed] == ["returns a Report or raises DstbenchError"]
    assert "KeyError" in failed[0].detail


def test_load_results_gives_typed_records_and_a_frame(tmp_path, registry):
    import dstbench

    root = write_results(tmp_path, registry, SIMPLE, lambda s: 0.9 + 0.01 * s["seed"])
    runs = dstbench.load_results(root)
    assert len(runs) == 4 and all(isinstance(r, dstbench.RunResult) for r in runs)
    assert [r.run_id for r in runs] == sorted(r.run_id for r in runs)
    assert sorted(r.test_accuracy for r in runs) == [0.9, 0.9, 0.91, 0.91]
    assert {r.spec["criterion"]["name"] for r in runs} == {"magnitude", "snip"}
    assert not any(r.at_chance for r in runs)
    frame = runs.to_frame()
    assert list(frame["run_id"]) == [r.run_id for r in runs]
    assert frame["test_accuracy"].tolist() == [r.test_accuracy for r in runs]
    with pytest.raises(DstbenchError, match="no such results directory"):
        dstbench.load_results(tmp_path / "missing")


SWEPT_DENSITY = """
name = "dens"
model = "mlp"
dataset = "digits"
densities = [0.05, 0.2]
criteria = ["magnitude", "snip"]
seeds = [0, 1]
baselines = ["dense", "static"]
"""


def _density_accuracy(spec):
    if spec["method"] == "dense":
        return 0.95
    base = {"static": 0.7, "dst": 0.8}[spec["method"]]
    return base + spec["density"] / 10 + 0.01 * spec["seed"]


def test_sweep_along_the_density(tmp_path, registry):
    root = write_results(tmp_path, registry, SWEPT_DENSITY, _density_accuracy)
    assert main(["analyze", "sweep", "density", str(root), "-o", str(tmp_path / "d.md")]) == 0
    text = (tmp_path / "d.md").read_text()
    after = text.split("### mlp on digits, growth: gradient\n\n", 1)[1].split("\n\n")
    section = after[0]
    lines = section.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["method", "density=0.05", "density=0.2", "not swept"]
    split = ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])
    rows = {cells[0]: cells[1:] for cells in split}
    assert rows["dense"] == ["–", "–", "95.00 ± 0.00"]
    half = sp.t.ppf(0.975, 1) * sp.sem([0.0, 1.0])
    assert rows["static"] == [f"71.00 ± {half:.2f}", f"72.50 ± {half:.2f}", "–"]
    assert rows["magnitude"] == [f"81.00 ± {half:.2f}", f"82.50 ± {half:.2f}", "–"]
    assert (tmp_path / "d-mlp-on-digits.png").read_bytes()[:4] == b"\x89PNG"
    # and, as for every sweep, the paired difference to static at the same density
    assert after[1].startswith("Paired difference to static")
    paired = after[2].splitlines()
    magnitude = [c.strip() for c in paired[2].strip("|").split("|")]
    assert magnitude == ["magnitude", "+10.00 ± 0.00 ▲ (n=2)", "+10.00 ± 0.00 ▲ (n=2)"]
