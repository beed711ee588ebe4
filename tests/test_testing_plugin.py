"""dstbench.testing works as a pytest plugin for plugin authors (run in a separate pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

AUTHOR_PLUGIN = '''
import torch
from dstbench import hookimpl


def abs_grad(ctx):
    """|g|: prune the weights the current batch cares least about."""
    return ctx.grad.abs()


def bad_rng(ctx):
    """Random scores from the global generator (a conformance failure)."""
    return torch.rand(ctx.weight.shape)


@hookimpl
def dstbench_register_criteria(register):
    register("abs_grad", abs_grad, needs_grad=True)
    register("bad_rng", bad_rng)
'''

AUTHOR_TESTS = """
import pytest
import torch

import dstbench
import my_plugin
from dstbench.testing import check_criterion, check_plugin


def test_fixtures(dstbench_plugins, dstbench_layer, dstbench_run, dstbench_tiny_model,
                  dstbench_tiny_data, dstbench_cli):
    loaded = dstbench_plugins(my_plugin)
    assert "abs_grad" in loaded.registry.criteria
    assert dstbench.registry() is loaded.registry  # process-wide for this test
    ctx = dstbench_layer((8, 3, 3, 3), density=0.25, seed=1)
    assert ctx.weight.shape == (8, 3, 3, 3) and int(ctx.mask.sum()) == 54
    assert bool((ctx.weight[~ctx.mask] == 0).all())
    record = dstbench_run(criterion="abs_grad")
    assert record["status"] == "ok"
    assert record["provenance"]["components"]["criterion"]["plugin"] == "my_plugin"
    model = dstbench_tiny_model((1, 8, 8), 10)
    parts = dstbench_tiny_data(n=64)
    assert model(parts.train.x).shape == (64, 10)
    result = dstbench_cli("plugins", "--json")
    assert result.code == 0 and '"my_plugin"' in result.out
    check_criterion("abs_grad")


def test_plugins_restored_between_tests():
    assert "abs_grad" not in dstbench.registry().criteria


def test_conformance_failure_is_an_assertion_with_the_fix(dstbench_plugins):
    dstbench_plugins(my_plugin)
    with pytest.raises(AssertionError) as info:
        check_criterion("bad_rng", train=False)
    text = str(info.value)
    assert "FAIL  draws randomness only from ctx.generator" in text
    assert "fix: pass generator=ctx.generator" in text


def test_check_plugin_reports_every_failure():
    with pytest.raises(AssertionError, match=r"1 of 24 checks failed, in 1 of 2 components"):
        check_plugin(my_plugin)
"""


@pytest.mark.slow
def test_author_tests_pass_with_the_pytest_plugin(tmp_path):
    (tmp_path / "my_plugin.py").write_text(textwrap.dedent(AUTHOR_PLUGIN))
    (tmp_path / "test_author.py").write_text(textwrap.dedent(AUTHOR_TESTS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSTBENCH_")}
    env["DSTBENCH_LOAD_PLUGINS"] = ""  # the author's environment: nothing else installed
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "dstbench.testing", "-q", "-p", "no:cacheprovider",
         "-W", "error", "test_author.py"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
