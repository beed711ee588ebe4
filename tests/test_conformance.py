"""The conformance kit: built-ins pass it, a broken plugin fails it with useful messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dstbench import hookimpl
from dstbench.cli import main
from dstbench.conformance import check_plugin, format_report
from dstbench.conformance.plugin import check_module
from dstbench.plugins import DEFAULT_PLUGINS

PLUGINS = Path(__file__).parent / "plugins"
BROKEN = str(PLUGINS / "broken_plugin.py")


@pytest.mark.parametrize("plugin", [name for name, _ in DEFAULT_PLUGINS])
def test_every_builtin_plugin_passes(plugin):
    report = check_plugin(plugin)
    assert report.ok, format_report(report)
    assert report.components, "every built-in plugin registers something"
    assert all(c.ok and c.checks for c in report.components)


@pytest.fixture(scope="module")
def broken():
    report = check_module(BROKEN)
    return {c.name: c for c in report.components}, report


#: component -> (the only check that fails, text of its detail, text of its fix)
EXPECTED = {
    "flat_scores": (
        {
            "returns a score tensor of the weight's shape",
            "trains: a short DST run on digits ends ok",
        },
        "Linear weight (16, 24): returned shape (384,), expected shape (16, 24)",
        "shaped like ctx.weight",
    ),
    "ratio_no_epsilon": (
        {"scores are finite on active weights", "trains: a short DST run on digits ends ok"},
        "3 of 192 scores are inf",
        "epsilon",
    ),
    "undeclared_grad": (
        {"runs on Linear and Conv2d weights", "trains: a short DST run on digits ends ok"},
        "AttributeError: 'NoneType' object has no attribute 'abs' (at broken_plugin.py:27 in "
        "undeclared_grad)",
        "register it with needs_grad=True",
    ),
    "linear_only": (
        {"runs on Linear and Conv2d weights"},
        "Conv2d weight (8, 4, 3, 3): ValueError: too many values to unpack",
        "Conv2d weights 4-D",
    ),
    "in_place": (
        {
            "does not modify its inputs",
            "selects through the engine",  # the engine fails a run whose inputs change
            "trains: a short DST run on digits ends ok",
        },
        "ctx.weight changed",
        "ctx.weight.abs_()",
    ),
    "global_rng": (
        {"draws randomness only from ctx.generator"},
        "the choice changed with torch's global random state",
        "generator=ctx.generator",
    ),
    "picks_inactive": (
        {"prunes only active weights", "trains: a short DST run on digits ends ok"},
        "n=1: 1 inactive position selected",
        "chosen &= ctx.mask",
    ),
    "one_short": (
        {"prunes exactly n positions", "trains: a short DST run on digits ends ok"},
        "asked for n=1, selected 0",
        "register with exact=False",
    ),
    "no_description": ({"has a description"}, "description is empty", "docstring"),
    "grows_active": (
        {
            "grows only inactive positions",
            "grows exactly n positions",
            "trains: a short DST run on digits ends ok",
        },
        "192 already active positions selected",
        "chosen &= ~ctx.mask",
    ),
    "too_eager": (
        {"returns a number in [0, 1] at every step"},
        "total_steps=1, initial=0.5, step 1: returned 1.25",
        "return a float in [0, 1]",
    ),
    "ignores_density": (
        {"meets the global density with layer densities in [0, 1]"},
        "keep 25216.0 of 50432 weights, expected 504.3",
        "sum(density_l * numel_l) == density * sum(numel_l)",
    ),
    "no_weights": (
        {"runs one training step", "has Linear or Conv weights to sparsify"},
        "output shape (4, 64), expected (4, 10)",
        "one logit per class",
    ),
    "labels_out_of_range": (
        {"splits match input_shape and num_classes"},
        "train labels span [1, 10], expected [0, 9]",
        "class indices in [0, num_classes)",
    ),
}


@pytest.mark.parametrize("component", sorted(EXPECTED))
def test_broken_component_fails_exactly_the_right_checks(broken, component):
    components, _ = broken
    failed_names, detail, fix = EXPECTED[component]
    failures = components[component].failures
    assert {c.name for c in failures} == failed_names, format_report(broken[1])
    assert any(detail in c.detail for c in failures), [c.detail for c in failures]
    assert any(fix in c.fix for c in failures), [c.fix for c in failures]


def test_broken_plugin_report_lists_every_component(broken):
    components, report = broken
    assert set(components) == set(EXPECTED)
    assert not report.ok
    text = format_report(report)
    assert text.splitlines()[0].startswith("plugin 'broken_plugin' (")
    assert "FAIL  criterion 'flat_scores': 2 of 6 checks failed" in text
    assert "fix: return one score per weight" in text
    assert text.splitlines()[-1] == (
        f"{len(report.failures)} of {sum(1 for _ in report.all_checks())} checks failed, in 14 of "
        "14 components, of plugin 'broken_plugin'; see the fixes above"
    )


def test_check_plugin_cli_exits_1_and_prints_fixes(capsys):
    assert main(["check-plugin", BROKEN]) == 1
    out, err = capsys.readouterr()
    assert "FAIL  schedule 'too_eager'" in out
    assert "fix: restrict the selection to ~ctx.mask" in out
    assert err == "dstbench check-plugin: failed: broken_plugin\n"


def test_check_plugin_cli_passes_builtins(capsys):
    assert main(["check-plugin", "builtin-schedules", "builtin-distributions"]) == 0
    out, err = capsys.readouterr()
    assert "plugin 'builtin-schedules' (dstbench " in out
    assert "ok    schedule 'cosine': 5 checks passed" in out
    assert "all 14 checks passed (3 components)" in out
    assert err == ""


def test_check_plugin_counts_add_up_to_the_total(capsys):
    """Each plugin's "N checks passed" lines sum to its "all M checks passed"."""
    assert main(["check-plugin", "builtin-schedules", "builtin-criteria"]) == 0
    out = capsys.readouterr().out
    for block in out.split("plugin '")[1:]:
        parts = [int(n) for n in re.findall(r"^  ok    .*: (\d+) checks? passed", block, re.M)]
        total = int(re.search(r"^all (\d+) checks passed", block, re.M)[1])
        assert sum(parts) == total, block


def test_check_plugin_cli_takes_a_component_name(capsys):
    assert main(["check-plugin", "erk", "-v"]) == 0
    out, _ = capsys.readouterr()
    assert "distribution 'erk'" in out and "distribution 'er'" not in out
    assert "ok    meets the global density with layer densities in [0, 1]" in out


def test_check_plugin_cli_json(capsys):
    assert main(["check-plugin", "builtin-models", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["plugin"] == "builtin-models"
    models = {m["name"]: m for m in report["components"]}
    assert {"mlp", "mlp_cifar", "resnet56", "lenet5"} <= set(models)
    assert all(c["status"] == "pass" for m in models.values() for c in m["checks"])


def test_check_plugin_cli_unknown_name_is_a_one_line_error(capsys):
    assert main(["check-plugin", "magnitud"]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1
    assert "'magnitud' is neither an installed plugin nor a registered component" in err
    assert "(did you mean 'magnitude'?)" in err and "'builtin-criteria'" in err


def test_import_error_is_reported_by_name_with_its_error(capsys):
    assert main(["check-plugin", str(PLUGINS / "import_error_plugin.py")]) == 1
    out, _ = capsys.readouterr()
    assert "FAIL  loads without error: ModuleNotFoundError: No module named " in out
    assert "1 of 1 checks failed, in the plugin itself, of plugin 'import_error_plugin'" in out
    assert "'dstbench_no_such_dependency' (at import_error_plugin.py:5 in <module>)" in out
    assert 'fix: make `python -c "import import_error_plugin"` work' in out


def test_misspelled_hook_fails_the_plugin_naming_the_hook(capsys):
    assert main(["check-plugin", str(PLUGINS / "typo_plugin.py")]) == 1
    out, _ = capsys.readouterr()
    assert (
        "FAIL  loads without error: PluginError: plugin 'typo_plugin' implements unknown hook "
        "'dstbench_register_criterias' (did you mean 'dstbench_register_criteria'?)"
    ) in out
    assert "fix: rename the function to one of dstbench's hooks" in out


class _Collides:
    @hookimpl
    def dstbench_register_criteria(self, register):
        register("magnitude", lambda ctx: ctx.weight.abs(), description="again")


class _NoHooks:
    def dstbench_register_criteria(self, register):  # no @hookimpl: not a hook
        register("x", lambda ctx: ctx.weight)


class _FailingObserver:
    @hookimpl
    def dstbench_epoch_end(self, run, epoch):
        raise RuntimeError("disk full")


def test_collision_with_a_builtin_names_both_plugins():
    report = check_plugin(_Collides(), name="collides")
    (check,) = report.checks
    assert check.failed
    assert check.detail == (
        "criterion 'magnitude' is registered by both plugin 'builtin-criteria' and plugin "
        "'collides'; block one with DSTBENCH_DISABLE_PLUGINS=collides"
    )
    assert "rename the component" in check.fix


def test_a_plugin_without_hooks_fails():
    report = check_plugin(_NoHooks(), name="nohooks")
    assert [c.name for c in report.failures] == ["implements at least one dstbench hook"]
    assert "@hookimpl" in report.failures[0].detail


def test_a_failing_lifecycle_hook_fails_the_lifecycle_check():
    report = check_plugin(_FailingObserver(), name="observer")
    (hooks,) = report.components
    (check,) = hooks.failures
    assert check.name == "lifecycle hooks run through a short DST run"
    assert check.detail == "run failed: RuntimeError: disk full"


def test_no_train_skips_the_short_runs():
    report = check_plugin("builtin-criteria", components=["snip"], train=False)
    (snip,) = report.components
    assert snip.ok
    assert not any(c.name.startswith("trains") for c in snip.checks)


def test_check_plugin_cli_rejects_a_bad_device(capsys):
    assert main(["check-plugin", "builtin-models", "--device", "gpu"]) == 2
    assert capsys.readouterr().err == (
        "dstbench: error: --device: expected cpu, cuda or cuda:N, got 'gpu'\n"
    )


@pytest.mark.slow
def test_reproduce_with_loads_a_plugin_given_as_a_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dstbench", "check-plugin", BROKEN, "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    fixes = [
        check["fix"]
        for report in json.loads(result.stdout)
        for component in report["components"]
        for check in component["checks"]
        if check.get("fix", "").startswith("reproduce with:")
    ]
    assert fixes, result.stdout[:500]
    command = fixes[0][len("reproduce with: ") :].replace("dstbench run", "python -m dstbench run")
    command = command.replace("python -m", f"{sys.executable} -m", 1)
    done = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path)
    assert "unknown" not in done.stderr.lower() and "not registered" not in done.stderr
    # the failure reproduces: a plugin's error is a user error, one line and exit status 2
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "criterion 'flat_scores'" in lines[0], done.stderr
