"""``dstbench run`` and ``dstbench plugins`` as a user runs them: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def dstbench(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dstbench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.mark.slow
def test_run_prints_one_summary_line_and_writes_the_record(tmp_path):
    out = tmp_path / "run.json"
    result = dstbench(
        "run",
        "--model",
        "mlp",
        "--dataset",
        "digits",
        "--criterion",
        "magnitude",
        "--growth",
        "gradient",
        "--density",
        "0.1",
        "--epochs",
        "3",
        "--seed",
        "0",
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ok") and "test acc" in lines[0] and "density 0.1000" in lines[0]
    record = json.loads(out.read_text())
    assert record["status"] == "ok"
    assert record["spec"]["criterion"]["name"] == "magnitude" and record["spec"]["epochs"] == 3
    assert f"test acc {100 * record['metrics']['test_accuracy']:.2f}" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--dataset", "digts"],
            "dataset: unknown dataset 'digts' (did you mean 'digits'?); registered datasets:",
        ),
        (
            ["--dataset", "digits", "--criterion", "mest[lamb=2]"],
            "has no parameter 'lamb' (did you mean 'lam'?)",
        ),
        (
            ["--dataset", "digits", "--density", "1.5"],
            "density: expected a value in [1e-9, 1], got 1.5",
        ),
        (["--dataset", "digits", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
        (["--dataset", "digits", "--update-order", "sideways"], "invalid choice: 'sideways'"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback_nothing_written(tmp_path, args, message, capsys):
    out = tmp_path / "run.json"
    code, stdout, stderr = in_process("run", "--model", "mlp", *args, "--output", str(out))
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert message in stderr and "Traceback" not in stderr
    assert not out.exists()


def in_process(*args: str) -> tuple[int, str, str]:
    """``dstbench ARGS`` in this process (a fresh interpreter costs seconds): exit status,
    stdout, stderr."""
    import contextlib
    import io

    from dstbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_plugins_lists_every_builtin_with_version_as_json():
    code, stdout, stderr = in_process("plugins", "--json", "--components")
    assert code == 0, stderr
    payload = json.loads(stdout)
    names = {p["name"]: p for p in payload["plugins"]}
    assert names["builtin-criteria"]["registered"]["criteria"] == [
        "magnitude",
        "set",
        "set_paper",
        "mest",
        "snip",
        "rsensitivity",
        "sensitivity",
        "random",
    ]
    assert names["builtin-criteria"]["distribution"] == "dstbench"
    assert payload["components"]["criteria"]["mest"]["params"] == {"lam": 1.0}
    _, table, _ = in_process("plugins")
    assert "builtin-growth" in table and "gradient" in table


def test_run_help_says_which_defaults_the_dataset_sets(capsys):
    """digits trains 30 epochs of batches of 32 with ΔT 50: --help says so, not only 100."""
    from dstbench.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS training epochs (default: the dataset's, digits: 30; else 100)" in text
    assert "(default: the dataset's, digits: 32; else 128)" in text
    assert "(ΔT) (default: the dataset's, digits: 50; else 800)" in text
    assert "SGD momentum (default: 0.9)" in text


def test_a_missing_dataset_is_one_line(tmp_path, capsys):
    from dstbench.cli import main

    empty = tmp_path / "data"
    empty.mkdir()
    code = main(["run", "--model", "mlp", "--dataset", "cifar10", "--data-root", str(empty)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("dstbench: error: dataset 'cifar10': no data at ")


def test_list_options_take_commas_as_well_as_repeats():
    from dstbench.cli import build_parser
    from dstbench.cli.run import spec_from_args

    parser = build_parser(only="run")
    base = ["run", "--model", "mlp", "--dataset", "digits"]
    commas = parser.parse_args([*base, "--compare-criteria", "magnitude,mest[lam=0.1,x=2]"])
    repeats = parser.parse_args(
        [*base, "--compare-criteria", "magnitude", "--compare-criteria", "mest[lam=0.1,x=2]"]
    )
    expected = ["magnitude", "mest[lam=0.1,x=2]"]
    assert spec_from_args(commas)["compare_criteria"] == expected
    assert spec_from_args(repeats)["compare_criteria"] == expected
