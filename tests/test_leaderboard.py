"""Leaderboards from records made by hand: values, bold, ranks, footers, labels, provenance,
plots, determinism and --check."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from handmade import new_record

from dstbench.cli import main
from dstbench.contracts.spec import spec_hash
from dstbench.leaderboard import is_stale, render_leaderboard, write_leaderboard
from dstbench.suite import RunStore, load_suite

SUITE = """
name = "hand"
description = "Made by hand."
model = "mlp"
dataset = "digits"
densities = [0.1, 0.2]
criteria = ["magnitude", {name = "mest", lam = [0.1, 1.0]}]
growth = "gradient"
seeds = [0, 1, 2]
baselines = ["dense", "static"]
"""

# Final test accuracy (%) per row, density and seed; None: no record yet; a string: the
# run ended with that status.
ACCURACY = {
    ("dense", None): [98, 99, 100],
    ("static", 0.1): [80, 82, 84],
    ("static", 0.2): [88, 90, None],
    ("magnitude", 0.1): [90, 92, "failed"],
    ("magnitude", 0.2): [95, 95, 95],
    ("mest0.1", 0.1): [91, 91, 91],
    ("mest0.1", 0.2): [93, "diverged", 95],
    ("mest1.0", 0.1): [85, 86, 87],
    ("mest1.0", 0.2): [96, 97, 98],
}


def row_of(spec):
    if spec["method"] != "dst":
        return spec["method"], (None if spec["method"] == "dense" else spec["density"])
    criterion = spec["criterion"]
    name = criterion["name"] + (str(criterion["params"]["lam"]) if criterion["params"] else "")
    return name, spec["density"]


def provenance(day, torch="2.14.1"):
    return {
        "dstbench": "0.1.0",
        "date": f"2025-03-{day:02d}T10:00:00Z",
        "torch": torch,
        "cuda": None,
        "python": "3.11.7",
        "device_name": "cpu (x86_64)",
        "plugins": [
            {"name": "builtin-criteria", "distribution": "dstbench", "version": "0.1.0"},
            {"name": "extra", "distribution": "dstbench-extra", "version": "0.2.0"},
        ],
    }


def make_results(root, registry, accuracy=ACCURACY, suite_text=SUITE):
    (root / "s.toml").write_text(suite_text)
    suite = load_suite(root / "s.toml", registry)
    store = RunStore(root / "results")
    store.write_manifest(
        suite.name,
        suite.description,
        "s.toml",
        [{"run_id": c.run_id, "spec": c.spec} for c in suite.cells],
    )
    for day, cell in enumerate(suite.cells, 1):
        value = accuracy[row_of(cell.spec)][cell.spec["seed"]]
        if value is None:
            continue
        record = new_record(cell.spec, cell.run_id)
        record["provenance"] = provenance(day % 28 + 1)
        record["execution"] = {"executor": "local", "workers": 2}
        if isinstance(value, str):
            record["status"] = value
            record["reason"] = "training loss became nan in epoch 3"
            record["error"] = {"type": "RuntimeError", "message": "boom | bang"}
        else:
            record["status"] = "ok"
            record["metrics"]["test_accuracy"] = value / 100
            record["metrics"]["best_val_test_accuracy"] = (value - 1) / 100
        store.write(record)
    return root / "results", suite


def table_rows(markdown, heading):
    """The rows of the first table after ``heading``: {label: [cells...]}."""
    lines = markdown.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_cells_bold_ranks_and_footer(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    markdown = render_leaderboard(results, stat="std").markdown
    rows = table_rows(markdown, "### mlp on digits, growth: gradient")
    # Bold: the best mean and every row whose paired difference to it is not significant.
    # d=0.1: mest[lam=1.0] vs magnitude has diffs 5, 6 over two shared seeds (t(1) interval
    # includes 0: a tie); static's diffs 10, 10 exclude 0. d=0.2: magnitude's diffs to
    # mest[lam=1.0] are 1, 2, 3 ([-0.48, 4.48]: a tie); mest[lam=0.1]'s are 3, 3 (not).
    # ‡: a cell of two seeds has a t(1) interval of ± 12.7 × its standard error, which holds
    # the mean of every other row of its column: too wide to rank.
    assert rows == {
        "dense": ["99.00 ± 1.00", "99.00 ± 1.00", "ref."],
        "static": ["82.00 ± 2.00", "89.00 ± 1.41 (2/3) ‡", "4.00 [3.5, 4.0]"],
        "magnitude": ["**91.00 ± 1.41** (2/3) ‡", "**95.00 ± 0.00**", "1.75 [1.0, 2.5]"],
        "mest[lam=0.1]": ["**91.00 ± 0.00**", "94.00 ± 1.41 (2/3) ‡", "2.25 [1.0, 3.0]"],
        "mest[lam=1.0]": ["**86.00 ± 1.00**", "**97.00 ± 1.00**", "2.00 [1.0, 3.0]"],
    }
    assert "| method        |   d=0.1 |" not in markdown  # headers carry the densities
    assert "| method" in markdown and "d=0.1" in markdown and "d=0.2" in markdown
    assert "Not averaged in: 1 failed, 1 diverged, 1 not run yet." in markdown
    failed_line = next(line for line in markdown.splitlines() if "**failed**" in line)
    assert "magnitude, d=0.1, seed 2" in failed_line
    assert "RuntimeError: boom \\| bang" in failed_line  # a | would break the table
    assert "(runs/" in failed_line
    diverged_line = next(line for line in markdown.splitlines() if "**diverged**" in line)
    assert "mest, d=0.2, seed 1" in diverged_line and "training loss became nan" in diverged_line


def test_best_validation_checkpoint_table(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    markdown = render_leaderboard(results, stat="std").markdown
    details = markdown.split("<details>", 1)[1]
    rows = table_rows(details, "best-validation checkpoint")
    assert rows["dense"] == ["98.00 ± 1.00", "98.00 ± 1.00", "ref."]
    assert rows["mest[lam=1.0]"] == ["**85.00 ± 1.00**", "**96.00 ± 1.00**", "2.00 [1.0, 3.0]"]


def test_provenance_header_comes_from_the_records(tmp_path, registry):
    results, suite = make_results(tmp_path, registry)
    markdown = render_leaderboard(results).markdown
    assert markdown.startswith("# Leaderboard: hand\n")
    assert "Made by hand." in markdown
    top = markdown.split("Cells:", 1)[0].splitlines()
    header = dict(
        (cells[0].strip(), cells[1].strip())
        for cells in (line.strip("|").split("|") for line in top if line.startswith("| "))
    )
    assert header["dstbench"] == "0.1.0"
    assert header["plugins"] == "dstbench 0.1.0: builtin-criteria; dstbench-extra 0.2.0: extra"
    assert header["torch"] == "2.14.1 (CPU build)"
    assert header["device"] == "cpu (x86_64)"
    assert header["executor"] == "local, 2 workers"
    # 26 records written, dated by their cell's position (see make_results)
    assert header["date (UTC, from the records)"].startswith("2025-03-")
    assert " to 2025-03-" in header["date (UTC, from the records)"]
    assert header["runs"] == f"{len(suite.cells)} (24 ok, 1 failed, 1 diverged, 1 not run yet)"
    assert "[`runs/`](runs/)" in header["records"]


def test_same_records_give_byte_identical_output(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    first = write_leaderboard(results)
    markdown = first.read_bytes()
    pngs = {p.name: p.read_bytes() for p in results.glob("*.png")}
    assert list(pngs) == ["leaderboard-mlp-on-digits.png"]
    # the same records, copied elsewhere in another file order, give the same bytes
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(results / "suite.json", copy / "suite.json")
    (copy / "runs").mkdir()
    for path in sorted((results / "runs").glob("*.json"), reverse=True):
        shutil.copy(path, copy / "runs" / path.name)
    second = write_leaderboard(copy)
    assert second.read_bytes() == markdown
    assert {p.name: p.read_bytes() for p in copy.glob("*.png")} == pngs


def test_plot_is_written_next_to_the_markdown_and_linked(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    out = tmp_path / "docs" / "BOARD.md"
    out.parent.mkdir()
    assert main(["leaderboard", str(results), "-o", str(out)]) == 0
    png = out.parent / "BOARD-mlp-on-digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png.read_bytes()) > 10_000
    markdown = out.read_text()
    assert "![mlp on digits: test accuracy vs density](BOARD-mlp-on-digits.png)" in markdown
    assert "[`../results/runs/`](../results/runs/)" in markdown


def test_check_detects_a_stale_leaderboard(tmp_path, registry, capsys):
    results, _ = make_results(tmp_path, registry)
    board = results / "leaderboard.md"
    assert main(["leaderboard", str(results), "--check"]) == 1  # missing
    assert main(["leaderboard", str(results)]) == 0
    assert not is_stale(results)
    assert main(["leaderboard", str(results), "--check"]) == 0
    capsys.readouterr()
    written = board.read_bytes()
    path = next((results / "runs").glob("*.json"))
    record = json.loads(path.read_text())
    record["metrics"]["test_accuracy"] = 0.5
    record["status"] = "ok"
    path.write_text(json.dumps(record))
    assert main(["leaderboard", str(results), "--check"]) == 1
    out = capsys.readouterr().out
    assert "is stale" in out and "regenerate it with: dstbench leaderboard" in out
    assert board.read_bytes() == written  # --check writes nothing


def test_rows_show_other_varying_keys(tmp_path, registry):
    text = textwrap.dedent(
        """
        name = "periods"
        model = "mlp"
        dataset = "digits"
        densities = [0.1]
        criteria = ["magnitude", "snip"]
        update_period = [25, 100]
        seeds = [0]
        baselines = ["static"]
        """
    )
    accuracy = {
        ("static", 0.1): [70],
        ("magnitude", 0.1): [80],
        ("snip", 0.1): [75],
    }
    results, _suite = make_results(tmp_path, registry, accuracy, text)
    rows = table_rows(render_leaderboard(results).markdown, "growth: gradient")
    assert list(rows) == [
        "static",
        "magnitude (update_period=25)",
        "magnitude (update_period=100)",
        "snip (update_period=25)",
        "snip (update_period=100)",
    ]
    # one seed: no interval, and only equal means tie for bold
    assert rows["static"] == ["70.00", "5.00 [5.0, 5.0]"]
    assert rows["magnitude (update_period=25)"] == ["**80.00**", "1.50 [1.5, 1.5]"]


def test_a_folder_of_records_without_manifest(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    loose = tmp_path / "loose"
    loose.mkdir()
    for path in (results / "runs").glob("*.json"):
        shutil.copy(path, loose / path.name)
    (loose / "notes.json").write_text('{"not": "a record"}')
    markdown = render_leaderboard(loose, stat="std").markdown
    rows = table_rows(markdown, "growth: gradient")
    # without a manifest nothing is known to be missing: counts are over the records found
    assert rows["static"][1] == "89.00 ± 1.41 ‡"
    assert rows["magnitude"][0] == "**91.00 ± 1.41** (2/3) ‡"  # its failed run is on disk
    assert "Not averaged in: 1 failed, 1 diverged." in markdown


def test_records_outside_the_suite_are_left_out_and_said_so(tmp_path, registry):
    results, _ = make_results(tmp_path, registry)
    before = render_leaderboard(results).markdown
    dense = next(
        r
        for r in (json.loads(p.read_text()) for p in (results / "runs").glob("*.json"))
        if r["spec"]["method"] == "dense"
    )
    dense["spec"]["seed"] = 7  # e.g. left by an older version of the suite
    dense["run_id"] = spec_hash(dense["spec"])
    dense["metrics"]["test_accuracy"] = 0.01
    RunStore(results).write(dense)  # written as dstbench writes records: with its digest
    after = render_leaderboard(results).markdown
    note = "1 record(s) in `runs/` belong to no run of the current suite and are left out.\n\n"
    assert after.replace(note, "") == before
    everything = render_leaderboard(results, all_records=True, stat="std").markdown
    assert (
        table_rows(everything, "growth: gradient")["dense"][0] == "74.50 ± 49.01"
    )  # 98, 99, 100 and 1


def test_no_records_is_a_user_error(tmp_path, capsys):
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "no run records found" in capsys.readouterr().err
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("status", ["invalid"])
def test_invalid_runs_are_counted_not_averaged(tmp_path, registry, status):
    accuracy = dict(ACCURACY)
    accuracy[("mest1.0", 0.2)] = [96, 97, status]
    results, _ = make_results(tmp_path, registry, accuracy)
    markdown = render_leaderboard(results, stat="std").markdown
    rows = table_rows(markdown, "growth: gradient")
    assert rows["mest[lam=1.0]"][1] == "**96.50 ± 0.71** (2/3)"
    assert "1 invalid" in markdown


def test_check_notices_a_missing_plot_and_svgs_are_written(tmp_path, registry, capsys):
    results, _ = make_results(tmp_path, registry)
    write_leaderboard(results)
    png = results / "leaderboard-mlp-on-digits.png"
    svg = results / "leaderboard-mlp-on-digits.svg"
    assert svg.read_bytes().startswith(b"<?xml") and png.is_file()
    assert main(["leaderboard", str(results), "--check"]) == 0
    svg.unlink()
    assert main(["leaderboard", str(results), "--check"]) == 1
    assert f"{svg}: plot missing" in capsys.readouterr().out


def test_check_notices_an_untrusted_record(tmp_path, registry, capsys):
    results, _ = make_results(tmp_path, registry)
    write_leaderboard(results)
    path = next(p for p in sorted((results / "runs").glob("*.json")))
    record = json.loads(path.read_text())
    record["spec"]["lr"] = 0.5  # edited by hand: no longer the run its id names
    path.write_text(json.dumps(record))
    assert main(["leaderboard", str(results), "--check"]) == 1
    assert f"{path}: untrusted record (its spec hashes to" in capsys.readouterr().out


def test_row_labels_never_show_python_reprs(tmp_path, registry):
    body = SUITE.replace('baselines = ["dense", "static"]', "") + (
        'compare_criteria = [["magnitude", "snip"], ["magnitude"]]\n'
    )
    accuracy = {k: [90, 91, 92] for k in ACCURACY}
    results, _ = make_results(tmp_path, registry, accuracy=accuracy, suite_text=body)
    markdown = render_leaderboard(results).markdown
    assert "compare_criteria=[magnitude,snip]" in markdown
    assert "{'name'" not in markdown and "'params'" not in markdown


def _header_rows(markdown):
    top = markdown.split("Cells:", 1)[0].splitlines()
    return [
        [c.strip() for c in line.strip("|").split("|")] for line in top if line.startswith("| ")
    ]


def test_provenance_rows_are_wrapped_and_say_a_cuda_build_ran_on_the_cpu(tmp_path, registry):
    many = [
        {"name": f"plugin-{i}", "distribution": f"dstbench-plugin-number-{i}", "version": "1.0"}
        for i in range(8)
    ]

    def extra(record):
        record["provenance"].update(
            torch="2.14.1+cu130", cuda="13.0", device="cpu", device_name="cpu (x86_64)"
        )
        record["provenance"]["plugins"] = many

    from dstbench.contracts.record import seal

    results, _ = make_results(tmp_path, registry)
    for path in (results / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        extra(record)
        path.write_text(json.dumps(seal(record)))  # rewritten as a writer would: sealed
    rows = _header_rows(render_leaderboard(results).markdown)
    fields = [r[0] for r in rows]
    assert ["torch", "2.14.1+cu130 (a CUDA 13.0 build, run on the CPU)"] in rows
    first = fields.index("plugins")
    plugins = [rows[first][1]]
    plugins += [r[1] for r in rows[first + 1 :] if r[0] == ""]
    assert len(plugins) == 4 and all(len(p) <= 90 for p in plugins)
    text = " ".join(plugins).replace("; ", ";").split(";")
    assert text == [f"dstbench-plugin-number-{i} 1.0: plugin-{i}" for i in range(8)]
