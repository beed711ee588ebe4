"""Every suite error: one line naming the file and the key, exit 2, no traceback, nothing
written. Checked through the command line, the way users meet them."""

from __future__ import annotations

import os
import textwrap

import pytest

from dstbench.cli import main

BASE = 'model = "mlp"\ndataset = "digits"\n'

CASES = {
    "unknown key": (
        BASE + "densitie = [0.1]\n",
        ["densitie: unknown key (did you mean 'densities'?)", "valid keys:", "criteria"],
    ),
    "both spellings of a grid key": (
        BASE + "density = 0.1\ndensities = [0.2]\n",
        ["density: give either 'density' or 'densities', not both"],
    ),
    "run-option spelling with a bad value": (
        BASE + "density = 2.0\n",
        ["bad.toml: density: "],
    ),
    "unknown key in a setup": (
        'dataset = "digits"\n[[setups]]\nmodel = "mlp"\nlrr = 0.1\n',
        ["setups[0].lrr: unknown key (did you mean 'lr'?)"],
    ),
    "top-level key in a setup": (
        'dataset = "digits"\n[[setups]]\nmodel = "mlp"\njobs = 2\n',
        ["setups[0].jobs: allowed only at the top level"],
    ),
    "wrong type": (
        BASE + 'epochs = "ten"\n',
        ["epochs: expected an integer, got 'ten'"],
    ),
    "wrong type in a setup": (
        'dataset = "digits"\n[[setups]]\nmodel = "mlp"\nnesterov = "yes"\n',
        ["setups[0].nesterov: expected true or false, got 'yes'"],
    ),
    "density above 1": (
        BASE + "densities = [0.1, 1.5]\n",
        ["densities[1]: expected a value in [1e-9, 1], got 1.5"],
    ),
    "density zero": (
        BASE + "densities = 0\n",
        ["densities: expected a value in [1e-9, 1], got 0"],
    ),
    "epochs zero": (
        BASE + "epochs = 0\n",
        ["epochs: expected a value in [1, 10^6], got 0"],
    ),
    "negative seed": (
        BASE + "seeds = [0, -1]\n",
        ["seeds[1]: expected a value in [0, 2^63) (torch's seed range), got -1"],
    ),
    "prune fraction out of range": (
        BASE + "prune_fraction = 2.0\n",
        ["prune_fraction: expected a value in (0, 1], got 2.0"],
    ),
    "empty list": (
        BASE + "densities = []\n",
        ["densities: expected a value or a non-empty list of values, got []"],
    ),
    "unknown criterion": (
        BASE + 'criteria = ["magnitude", "magnitue"]\n',
        [
            "criteria[1]: unknown criterion 'magnitue' (did you mean 'magnitude'?)",
            "registered criteria: 'magnitude', 'mest', 'random', 'rsensitivity'",
        ],
    ),
    "unknown growth": (
        BASE + 'growth = "gradiant"\n',
        ["growth: unknown growth 'gradiant' (did you mean 'gradient'?)", "'random'"],
    ),
    "unknown schedule": (
        BASE + 'schedule = "cosin"\n',
        ["schedule: unknown schedule 'cosin' (did you mean 'cosine'?)"],
    ),
    "unknown distribution": (
        BASE + 'distribution = "erkk"\n',
        ["distribution: unknown distribution 'erkk'", "registered distributions: 'er', 'erk'"],
    ),
    "unknown model": (
        'model = "mpl"\ndataset = "digits"\n',
        [
            "model: unknown model 'mpl' (did you mean 'mlp'?); registered models:",
            "'mlp', 'mlp_cifar'",
        ],
    ),
    "unknown dataset": (
        'model = "mlp"\ndataset = "digit"\n',
        ["dataset: unknown dataset 'digit' (did you mean 'digits'?)", "registered datasets:"],
    ),
    "missing model": (
        'dataset = "digits"\n',
        ["model: required", "registered models:", "'mlp', 'mlp_cifar'"],
    ),
    "unknown component parameter": (
        BASE + 'criteria = ["mest[lamda=0.1]"]\n',
        ["criteria[0]: criterion 'mest' has no parameter 'lamda' (did you mean 'lam'?)"],
    ),
    "wrong component parameter type": (
        BASE + 'criteria = [{name = "mest", lam = "big"}]\n',
        ["criteria[0]: criterion 'mest' parameter 'lam' expects float", "'big'"],
    ),
    "unknown baseline": (
        BASE + 'baselines = ["dens"]\n',
        ["baselines: expected a list of 'dense', 'static', got 'dens' (did you mean 'dense'?)"],
    ),
    "unknown fidelity": (
        BASE + 'fidelity = "papers"\n',
        ["fidelity: expected one of 'default', 'paper', got 'papers'"],
    ),
    "unknown exclude key": (
        BASE + 'exclude = [{criterio = "snip"}]\n',
        ["exclude[0].criterio: unknown key (did you mean 'criterion'?)"],
    ),
    "unknown exclude value": (
        BASE + 'exclude = [{criterion = "snipp"}]\n',
        ["exclude[0].criterion: unknown criterion 'snipp' (did you mean 'snip'?)"],
    ),
    "exclude not a table": (
        BASE + 'exclude = ["snip"]\n',
        ["exclude[0]: expected a table of run keys and values"],
    ),
    "everything excluded": (
        BASE + "exclude = [{seed = 0}]\n",
        ["exclude: every run of the suite is excluded"],
    ),
    "bad jobs": (
        BASE + "jobs = 0\n",
        ["jobs: expected an integer >= 1, got 0"],
    ),
    "bad name": (
        BASE + 'name = "a/b"\n',
        ["name: expected a directory-safe name"],
    ),
    "unknown executor": (
        BASE + 'executor = "pbs"\n',
        ["executor: unknown executor 'pbs'; registered executors: 'dask', 'local', 'slurm'"],
    ),
    "setups not tables": (
        BASE + 'setups = ["mlp"]\n',
        ["setups[0]: expected a table, got 'mlp'"],
    ),
    "toml syntax error": (
        BASE + "densities = [0.1,\ncriteria = 3\n",
        ["TOML syntax error", "line 4"],
    ),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_suite_error_is_one_line_exit_2_and_writes_nothing(case, dry_run, workdir, capsys):
    text, fragments = CASES[case]
    (workdir / "bad.toml").write_text(text)
    before = listing(workdir)
    code, out, err = run_cli(["suite", "bad.toml", *(["--dry-run"] if dry_run else [])], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("dstbench: error: bad.toml: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert listing(workdir) == before


def test_missing_file(workdir, capsys):
    code, _out, err = run_cli(["suite", "nope.toml"], capsys)
    assert code == 2
    assert err == "dstbench: error: nope.toml: no such suite file\n"
    assert listing(workdir) == []


def test_directory_instead_of_file(workdir, capsys):
    (workdir / "suites").mkdir()
    code, _, err = run_cli(["suite", "suites"], capsys)
    assert code == 2
    assert "suites: is a directory; expected a suite .toml file" in err


def test_unknown_executor_on_the_command_line(workdir, capsys):
    (workdir / "ok.toml").write_text(BASE)
    code, _, err = run_cli(["suite", "ok.toml", "--executor", "locale"], capsys)
    assert code == 2
    assert "--executor: unknown executor 'locale' (did you mean 'local'?)" in err
    assert listing(workdir) == ["ok.toml"]


def test_bad_jobs_option(workdir, capsys):
    (workdir / "ok.toml").write_text(BASE)
    with pytest.raises(SystemExit) as exit_info:
        main(["suite", "ok.toml", "-j", "0"])
    assert exit_info.value.code == 2
    assert "expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_dry_run_of_a_valid_suite_prints_the_matrix_and_writes_nothing(workdir, capsys):
    (workdir / "ok.toml").write_text(
        BASE
        + textwrap.dedent(
            """
            densities = [0.1, 0.2]
            criteria = ["magnitude", {name = "mest", lam = [0.1, 1.0]}]
            seeds = [0, 1]
            baselines = ["dense"]
            lr = [0.05, 0.1]
            exclude = [{density = 0.3}]
            """
        )
    )
    code, out, err = run_cli(["suite", "ok.toml", "--dry-run"], capsys)
    assert code == 0
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:9] == [
        "#",
        "status",
        "run",
        "id",
        "setup",
        "method",
        "criterion",
        "growth",
        "density",
    ]
    assert "lr" in header  # a varying hyperparameter gets a column
    assert "mest[lam=0.1]" in out and "mest[lam=1.0]" in out
    assert lines[-1] == "suite ok: 28 runs: 28 to run; 28 would run (results in results/ok)"
    assert "exclude[0]: matches no run of the suite" in err
    assert listing(workdir) == ["ok.toml"]
    assert not os.path.exists(workdir / "results")


@pytest.mark.parametrize("where", ["file", "command line"])
def test_an_executor_parameter_out_of_range_names_its_place_and_writes_nothing(
    where, workdir, capsys
):
    pytest.importorskip("submitit")
    executor = 'executor = {name = "slurm", pack = -1}\n' if where == "file" else ""
    (workdir / "bad.toml").write_text(BASE + executor)
    before = listing(workdir)
    args = [] if where == "file" else ["--executor", "slurm[pack=-1]"]
    code, _out, err = run_cli(["suite", "bad.toml", *args], capsys)
    place = "bad.toml" if where == "file" else "--executor"
    assert code == 2
    assert err == (
        f"dstbench: error: {place}: executor 'slurm' parameter 'pack' expects an integer >= 1, "
        "or 0 for automatic, got -1\n"
    )
    assert listing(workdir) == before


def test_grid_keys_work_under_their_run_option_names(tmp_path, registry):
    """README: "any `dstbench run` option, under its own name": density, criterion, seed."""
    from dstbench.suite.loader import load_suite

    plural = BASE + 'densities = [0.1]\ncriteria = ["magnitude"]\nseeds = [0, 1]\n'
    singular = BASE + 'density = 0.1\ncriterion = "magnitude"\nseed = [0, 1]\n'
    in_setup = 'dataset = "digits"\nseed = [0, 1]\n[[setups]]\nmodel = "mlp"\ndensity = 0.1\n'
    in_setup += 'criterion = "magnitude"\n'
    ids = {}
    for name, text in {"plural": plural, "singular": singular, "setup": in_setup}.items():
        (tmp_path / f"{name}.toml").write_text(text)
        ids[name] = [c.run_id for c in load_suite(tmp_path / f"{name}.toml", registry).cells]
    assert len(ids["plural"]) == 2
    assert ids["singular"] == ids["plural"] == ids["setup"]
