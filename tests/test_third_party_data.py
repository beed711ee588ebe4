"""A third-party plugin registers an in-memory dataset and a model factory in a few lines
and uses them by name. The plugin is the one printed in docs/datasets.md, executed as is."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import dstbench
from dstbench.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"


def documented_plugin() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- third-party-example -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/datasets.md lost its third-party example"
    return match.group(1)


@pytest.fixture
def blobs_plugin(tmp_path, use_plugins):
    source = documented_plugin()
    code_lines = [
        line for line in source.splitlines() if line.strip() and not line.startswith('"""')
    ]
    assert len(code_lines) <= 30  # "a few lines": the whole plugin, imports included
    path = tmp_path / "dstbench_blobs.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("dstbench_blobs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded = use_plugins(("blobs", module))
    yield loaded
    sys.modules.pop("dstbench_blobs", None)


def test_the_documented_plugin_registers_both_components(blobs_plugin):
    registry = blobs_plugin.registry
    assert registry.datasets["blobs"].plugin == "blobs"
    assert dict(registry.datasets["blobs"].params) == {"n": 400, "noise": 0.5}
    assert registry.datasets["blobs"].defaults["epochs"] == 5
    assert dict(registry.models["wide_mlp"].params) == {"width": 64}
    assert blobs_plugin.records["blobs"].registered == {
        "datasets": ["blobs"],
        "models": ["wide_mlp"],
    }


def test_a_run_uses_them_by_name_with_parameters(blobs_plugin):
    record = dstbench.execute(
        {"model": "wide_mlp[width=32]", "dataset": "blobs[noise=0.3]", "density": 0.5, "seed": 1}
    )
    assert record["status"] == "ok", record.get("error")
    assert record["spec"]["epochs"] == 5  # the plugin's dataset defaults
    assert record["spec"]["dataset"]["params"] == {"n": 400, "noise": 0.3}
    assert record["density"]["layers"]["1.weight"]["numel"] == 2 * 32
    assert record["metrics"]["test_accuracy"] > 0.9
    assert record["topology"]["updates"] > 0


def test_the_cli_uses_them_by_name(blobs_plugin, tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(
        ["run", "--model", "wide_mlp", "--dataset", "blobs", "--density", "0.2",
         "--output", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert out.is_file()


def test_a_built_in_model_on_the_plugin_dataset(blobs_plugin):
    record = dstbench.execute({"model": "mlp_higgs", "dataset": "blobs", "density": 0.5})
    assert record["status"] == "ok", record.get("error")
    assert record["density"]["layers"]["5.weight"]["numel"] == 256  # one logit: binary BCE


def _own_val_plugin():
    """A dataset whose own validation split has every label flipped: validating on it gives
    an accuracy near 0, on a split carved from its training set one near 1."""
    import types

    import torch

    from dstbench import DatasetParts, TensorSplit, hookimpl

    def blobs(ctx):
        generator = torch.Generator().manual_seed(0)
        y = torch.arange(600) % 2
        x = torch.randn(600, 2, generator=generator) * 0.3 + (y[:, None] * 4.0 - 2.0)
        return DatasetParts(
            train=TensorSplit(x[:400], y[:400]),
            test=TensorSplit(x[400:500], y[400:500]),
            val=TensorSplit(x[500:], 1 - y[500:]),
            input_shape=(2,),
            num_classes=2,
        )

    module = types.ModuleType("own_val")

    @hookimpl
    def dstbench_register_datasets(register):
        register("own_val_blobs", blobs, defaults={"epochs": 3, "batch_size": 32})

    module.dstbench_register_datasets = dstbench_register_datasets
    return module


def test_a_plugin_datasets_own_validation_split_is_used(use_plugins):
    use_plugins(("own_val", _own_val_plugin()))
    record = dstbench.execute({"model": "mlp", "dataset": "own_val_blobs", "density": 0.5})
    assert record["status"] == "ok", record.get("error")
    assert record["spec"]["validation"] == "split"
    assert record["metrics"]["test_accuracy"] > 0.9
    assert record["metrics"]["curve"][-1]["val_accuracy"] < 0.1  # the flipped labels
    assert record["data_notes"]["validation"] == "the dataset's own validation split"
