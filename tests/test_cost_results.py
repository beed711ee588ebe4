"""Training cost as a published result: the leaderboard's time tables and ``dstbench
compare``'s time section, on records whose times are chosen by hand."""

from __future__ import annotations

from pathlib import Path

from handmade import write_results

from dstbench.analysis.compare import compare, comparison_markdown, summary
from dstbench.leaderboard import render_leaderboard
from dstbench.leaderboard.data import load_results

SUITE = """
name = "results"
model = "mlp"
dataset = "digits"
densities = [0.05, 0.2]
criteria = ["magnitude"]
growth = ["random"]
seeds = [0, 1]
baselines = ["dense"]
"""


def _timed(root: Path, registry, engine: str, seconds) -> Path:
    """Results whose runs took ``seconds(spec)`` per step, made by ``engine``."""

    def extra(record):
        spec = record["spec"]
        record["timings"]["seconds_per_step"] = seconds(spec)
        record["provenance"]["engine"] = engine
        record["provenance"]["device"] = "cpu"

    return write_results(root, registry, SUITE, lambda spec: 0.9, extra=extra)


def _sparse_seconds(spec) -> float:
    if spec["method"] == "dense":
        return 0.010
    return 0.002 if spec["density"] == 0.05 else 0.004 + 0.001 * spec["seed"]


def test_the_leaderboard_shows_time_per_step_and_the_ratio_to_dense(tmp_path, registry):
    results = _timed(tmp_path, registry, "sparse", _sparse_seconds)
    assert "Training time per step" not in render_leaderboard(results).markdown  # re-runs: same
    board = render_leaderboard(results, show_time=True).markdown
    assert "<details open><summary>Training time per step (ms" in board
    assert "engine: sparse; device: cpu" in board
    table = board.split("Training time per step", 1)[1].split("</details>", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if "|" in line}
    assert "10.00 ± 0.00" in rows["dense"]
    # d=0.05: 2 ms in both seeds; d=0.2: 4 and 5 ms, mean 4.5 ± 6.35 (t, 1 d.o.f.)
    assert "2.00 ± 0.00 (0.20×)" in rows["magnitude"]
    assert "4.50 ± 6.35 (0.45×)" in rows["magnitude"]


def test_compare_reports_time_per_step_with_its_ratio(tmp_path, registry):
    before = _timed(tmp_path / "a", registry, "single", lambda spec: 0.010)
    after = _timed(tmp_path / "b", registry, "sparse", _sparse_seconds)
    comparison = compare(load_results(before), load_results(after))
    markdown = comparison_markdown(comparison)
    section = markdown.split("## Training time per step (3 cells in both)", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| mlp")]
    assert len(rows) == 3
    assert any("| 0.05 " in r and "| 0.20× ▼" in r for r in rows)  # both seeds 2 ms vs 10
    assert any("| 0.2 " in r and "0.45×" in r and "▼" not in r for r in rows)  # too spread
    assert "time per step B/A: median 0.45×" in summary(comparison, None)


def test_dry_run_estimates_use_runs_of_the_same_engine_and_density(tmp_path, registry):
    """A missing sparse run at d=0.05 is estimated from its finished twin at d=0.05 (2 s), not
    from the setup's mean (6 s); asked for another engine, the estimate says it is a guess."""
    from dstbench.suite import RunStore, load_suite
    from dstbench.suite.cost import estimate
    from dstbench.suite.runner import plan

    seconds = {0.05: 2.0, 0.2: 4.0}

    def extra(record):
        spec = record["spec"]
        dense = spec["method"] == "dense"
        record["timings"]["total_seconds"] = 10.0 if dense else seconds[spec["density"]]
        record["provenance"]["engine"] = "single" if dense else "sparse"

    def outcome(spec):
        missing = spec["method"] == "dst" and spec["density"] == 0.05 and spec["seed"] == 1
        return None if missing else 0.9

    results = write_results(tmp_path, registry, SUITE, outcome, extra=extra)
    suite = load_suite(tmp_path / "results.toml", registry)
    store = RunStore(results)
    planned = plan(suite, store)
    assert sum(p.will_run for p in planned) == 1
    records = [r for _, r in store.records() if r is not None]
    (sparse,) = estimate(planned, records, registry, probe=False, engine="sparse")
    assert sparse.seconds_per_run == sum([10, 10, 2, 2, 4, 4]) / 6
    assert sparse.seconds_source == "finished runs alike (sparse engine)"
    (single,) = estimate(planned, records, registry, probe=False, engine="single")
    # The dense runs are alike on every engine (10 s); no DST run was trained by the single
    # engine, so each of the four is guessed from the setup's five records: 30 / 5 = 6 s.
    assert single.seconds_per_run == (10 + 10 + 4 * 6) / 6
    assert single.seconds_source == "finished runs of the setup (any engine, density) (and others)"


def test_a_batched_runs_time_is_its_share_of_its_groups(tmp_path, registry):
    """The batched engine records its group's time per step; a run costs a K-th of it."""

    def seconds(spec):
        return 0.010 if spec["method"] == "dense" else 0.008

    def extra(record):
        record["timings"]["seconds_per_step"] = seconds(record["spec"])
        record["provenance"]["engine"] = "batched"
        if record["spec"]["method"] != "dense":
            record["timings"]["group_size"] = 4

    results = write_results(tmp_path, registry, SUITE, lambda spec: 0.9, extra=extra)
    board = render_leaderboard(results, show_time=True).markdown
    table = board.split("Training time per step", 1)[1].split("</details>", 1)[0]
    assert "| magnitude | 2.00 ± 0.00 (0.20×) | 2.00 ± 0.00 (0.20×) |" in table
