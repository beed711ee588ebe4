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
    folded = render_leaderboard(results).markdown
    assert "<details><summary>Training time per step (ms" in folded
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
