"""The sparse engine against the single engine: same masks, same weights up to float
rounding, same records; fallback with one line for what it cannot run exactly; kernels,
growth draws and checkpoints.

Tolerance: after 50 steps every weight agrees with the single engine's within ``ATOL``
(absolute). The products are summed in another order (sparse rows instead of dense BLAS
blocks), so the weights differ by float rounding only.
"""

from __future__ import annotations

import importlib.util
import io
import math
from pathlib import Path

import pytest
import torch
from test_batched_engine import BATCH, tiny

import dstbench
from dstbench import hookimpl
from dstbench.contracts.execution import ExecutionOptions, RunRequest
from dstbench.engine.spec import apply_paper_fidelity, build_spec
from dstbench.plugins import get_plugins
from dstbench.sparse.selection import select
from dstbench.sparsetrain import native
from dstbench.sparsetrain.engine import SparseEngine, unsupported
from dstbench.sparsetrain.layer import SparseLinear
from dstbench.sparsetrain.masker import EXACT_DRAW_POSITIONS, _rejection_sample, uniform_growth

ATOL = 1e-5
ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """Observer + a tiny dataset: what the tests compare, and the invariants at every update."""

    def __init__(self) -> None:
        self.first_masks: dict[str, dict[str, torch.Tensor]] = {}
        self.final: dict[str, dict[str, torch.Tensor]] = {}
        self.updates: dict[str, int] = {}
        self.problems: list[str] = []

    @hookimpl
    def dstbench_register_datasets(self, register):
        register("tiny", tiny, description="random tensors, 50 batches of 16")

    @hookimpl
    def dstbench_topology_update(self, run, update):
        for layer in run.masker.layers:
            count = int(layer.mask.sum())
            if count != layer.target:
                self.problems.append(f"{run.run_id} {layer.name}: {count} != {layer.target}")
            if bool((layer.weight.detach()[~layer.mask] != 0).any()):
                self.problems.append(f"{run.run_id} {layer.name}: inactive weight not zero")
        for item in update.layers:
            if item.n_pruned != item.n_grown:
                self.problems.append(f"{run.run_id} {item.name}: pruned != grown")
            if int(item.pruned.sum()) != item.n_pruned or int(item.grown.sum()) != item.n_grown:
                self.problems.append(f"{run.run_id} {item.name}: masks disagree with counts")
        self.updates[run.run_id] = self.updates.get(run.run_id, 0) + 1
        if run.run_id not in self.first_masks:
            self.first_masks[run.run_id] = {
                layer.name: layer.mask.clone() for layer in run.masker.layers
            }

    @hookimpl
    def dstbench_run_end(self, run, record):
        # Dense weights whatever the layout, and every other parameter by name.
        layers = run.masker.layers if run.masker is not None else []
        state = {layer.name: layer.weight.detach().clone() for layer in layers}
        for name, value in run.model.state_dict().items():
            if not name.endswith((".values", ".indices")) and name not in state:
                state[name] = value.detach().clone()
        self.final[run.run_id] = state

    def take(self) -> tuple[dict, dict, dict]:
        taken = (dict(self.first_masks), dict(self.final), dict(self.updates))
        self.first_masks.clear()
        self.final.clear()
        self.updates.clear()
        return taken


@pytest.fixture
def recorder(use_plugins):
    rec = Recorder()
    use_plugins(("recorder", rec))
    return rec


def _spec(**extra) -> dict:
    return {
        "dataset": "tiny",
        "model": "mlp",
        "epochs": 1,
        "batch_size": BATCH,
        "lr": 0.05,
        "val_fraction": 0.0,
        **extra,
    }


def _compare(recorder: Recorder, spec: dict) -> tuple[dict, dict]:
    """Train ``spec`` with both engines; assert the records, masks and weights agree."""
    sparse = dstbench.execute(spec, engine="sparse")
    first_s, final_s, updates_s = recorder.take()
    single = dstbench.execute(spec)
    first_d, final_d, updates_d = recorder.take()
    assert recorder.problems == []
    assert sparse["status"] == single["status"] == "ok", (sparse.get("error"), single.get("error"))
    assert sparse["provenance"]["engine"] == "sparse"
    assert sparse["run_id"] == single["run_id"]
    assert sparse["density"] == single["density"]
    assert sparse["topology"]["updates"] == single["topology"]["updates"] > 0
    run_id = sparse["run_id"]
    assert updates_s == updates_d
    for name, mask in first_d[run_id].items():
        assert torch.equal(first_s[run_id][name], mask), name  # first-update masks identical
    worst = max(float((final_s[run_id][k] - v).abs().max()) for k, v in final_d[run_id].items())
    assert final_s[run_id].keys() == final_d[run_id].keys()
    assert worst <= ATOL, worst
    for a, b in zip(sparse["metrics"]["curve"], single["metrics"]["curve"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5, abs=1e-6)
    return sparse, single


@pytest.mark.parametrize(
    ("criterion", "growth", "density", "period"),
    [
        ("magnitude", "gradient", 0.1, 10),
        ("set", "random", 0.05, 10),
        ("mest", "gradient", 0.2, 25),
        ("snip", "random", 0.1, 10),
        ("rsensitivity", "gradient", 0.1, 10),
        ("sensitivity", "random", 0.2, 25),
        ("random", "gradient", 0.3, 10),
    ],
)
def test_every_builtin_criterion_matches_the_single_engine(
    recorder, criterion, growth, density, period
):
    sparse, _ = _compare(
        recorder,
        _spec(criterion=criterion, growth=growth, density=density, update_period=period),
    )
    assert sparse["sparse_engine"]["sparse_layers"] == ["1.weight", "3.weight", "5.weight"]
    assert sparse["sparse_engine"]["masked_dense_layers"] == []


def test_paper_order_uniform_distribution_and_bernoulli_masks(recorder):
    _compare(
        recorder,
        _spec(
            criterion="magnitude",
            growth="random",
            density=0.1,
            update_period=10,
            update_order="paper",
            distribution="uniform",
            mask_init="bernoulli",
            seed=3,
        ),
    )


def test_mlp_higgs_binary_and_static(recorder):
    _compare(
        recorder,
        _spec(
            model="mlp_higgs",
            dataset="tiny[shape=higgs,classes=2]",
            criterion="snip",
            growth="gradient",
            density=0.05,
            update_period=10,
        ),
    )
    static = _spec(method="static", density=0.1)
    sparse = dstbench.execute(static, engine="sparse")
    single = dstbench.execute(static)
    assert sparse["topology"]["updates"] == single["topology"]["updates"] == 0
    assert sparse["metrics"]["curve"][-1]["train_loss"] == pytest.approx(
        single["metrics"]["curve"][-1]["train_loss"], rel=1e-5
    )


def test_conv_layers_stay_masked_dense_and_the_record_says_so(recorder):
    spec = _spec(
        model="small_conv",
        dataset="tiny[shape=rgb]",
        criterion="magnitude",
        growth="gradient",
        density=0.2,
        update_period=10,
    )
    sparse, _ = _compare(recorder, spec)
    layers = sparse["sparse_engine"]
    assert layers["sparse_layers"] == ["fc.weight"]
    assert layers["masked_dense_layers"] == ["conv1.weight", "conv2.weight", "conv3.weight"]


def _criteria_extra():
    path = ROOT / "plugins" / "dstbench-criteria-extra" / "dstbench_criteria_extra.py"
    spec = importlib.util.spec_from_file_location("dstbench_criteria_extra_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_plugin_criterion_runs_unchanged_on_dense_tensors(use_plugins):
    recorder = Recorder()
    use_plugins(("recorder", recorder), ("criteria-extra", _criteria_extra()))
    assert not dstbench.registry().criteria["taylor"].elementwise
    _compare(recorder, _spec(criterion="taylor", growth="random", density=0.1, update_period=10))


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"reset_momentum": False}, "reset_momentum = false"),
        ({"growth": "momentum"}, "growth 'momentum' reads the momentum"),
        (apply_paper_fidelity({}), "reset_momentum = false"),
        ({"compare_criteria": ["magnitude", "snip"]}, "compare_criteria"),
    ],
)
def test_what_it_cannot_run_exactly_falls_back_with_one_line(recorder, extra, reason):
    raw = {"criterion": "magnitude", "growth": "random", "density": 0.1, **extra}
    spec = build_spec(_spec(**raw), dstbench.registry())
    assert reason in (unsupported(spec) or "")
    stream = io.StringIO()
    options = ExecutionOptions(workers=1, device="cpu", engine="sparse")
    (record,) = SparseEngine(stream).run([RunRequest(spec=spec)], options, get_plugins())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and reason in lines[0] and "single engine" in lines[0]
    assert record.status == "ok"
    assert record.provenance["engine"] == "single"
    assert record.extra["engine_fallback"]["requested"] == "sparse"


def test_dense_runs_are_trained_without_a_line(recorder):
    spec = build_spec(_spec(method="dense"), dstbench.registry())
    stream = io.StringIO()
    options = ExecutionOptions(workers=1, device="cpu", engine="sparse")
    (record,) = SparseEngine(stream).run([RunRequest(spec=spec)], options, get_plugins())
    assert stream.getvalue() == "" and record.status == "ok"


# --- kernels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kernels", ["native", "torch"])
@pytest.mark.parametrize(("threads", "batch"), [(1, 16), (1, 100), (2, 128)])
def test_sparse_linear_gradients_match_nn_linear(monkeypatch, kernels, threads, batch):
    """Forward, input gradient and weight gradient at the active positions; batches that are
    narrower than, not a multiple of, and a multiple of the kernels' register block."""
    if kernels == "native" and native.load() is None:
        pytest.skip("no C compiler: the native kernels cannot be built here")
    monkeypatch.setenv(native.KERNELS_VARIABLE, kernels)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        first, second = torch.nn.Linear(50, 40), torch.nn.Linear(40, 7)
        masks = [torch.rand(40, 50, generator=g) < 0.3, torch.rand(7, 40, generator=g) < 0.5]
        with torch.no_grad():
            first.weight.mul_(masks[0])
            second.weight.mul_(masks[1])
        sparse = [
            SparseLinear.from_dense(first, masks[0]),
            SparseLinear.from_dense(second, masks[1]),
        ]
        assert sparse[0].kernels.name == kernels
        x = torch.randn(batch, 50, generator=g, requires_grad=True)
        dense_out = second(torch.relu(first(x)))
        dense_out.square().sum().backward()
        dense_x_grad = x.grad.clone()
        x.grad = None
        first.bias.grad = second.bias.grad = None
        sparse_out = sparse[1](torch.relu(sparse[0](x)))
        sparse_out.square().sum().backward()
        assert torch.allclose(sparse_out, dense_out, atol=1e-5)
        assert torch.allclose(x.grad, dense_x_grad, atol=1e-5)
        for layer, linear in zip(sparse, (first, second), strict=True):
            dense_grad = linear.weight.grad.reshape(-1)[layer.indices]
            assert torch.allclose(layer.values.grad, dense_grad, atol=1e-5)
            assert torch.allclose(layer.dense_gradient(), linear.weight.grad, atol=1e-5)
            assert torch.equal(layer.dense_mask(), linear.weight != 0)
    finally:
        torch.set_num_threads(previous)


def test_state_dicts_of_another_topology_load(generator):
    linear = torch.nn.Linear(30, 20)
    masks = [torch.rand(20, 30, generator=generator) < p for p in (0.2, 0.2)]
    layer = SparseLinear.from_dense(linear, masks[0])
    other = SparseLinear.from_dense(linear, masks[1])
    layer.load_state_dict(other.state_dict())
    assert torch.equal(layer.indices, other.indices)
    assert torch.equal(layer.dense_weight(), other.dense_weight())
    x = torch.randn(4, 30, generator=generator)
    assert torch.allclose(layer(x), other(x))


# --- growth draws -----------------------------------------------------------------------------


@pytest.mark.parametrize(("numel", "active", "n"), [(300, 40, 7), (5000, 4000, 900), (70000, 3, 5)])
def test_uniform_growth_replays_the_single_engine_draw(numel, active, n):
    g = torch.Generator().manual_seed(1)
    kept = torch.sort(torch.randperm(numel, generator=g)[:active]).values
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[kept] = True
    dense = select(
        torch.zeros(numel), ~mask, n, largest=True, generator=torch.Generator().manual_seed(9)
    )
    drawn = uniform_growth(kept, numel, n, torch.Generator().manual_seed(9))
    assert torch.equal(drawn, dense.nonzero().squeeze(1))


def test_rejection_sampling_is_uniform_and_avoids_active_positions():
    """Beyond the exact-draw limit: ``n`` distinct inactive positions, each equally likely."""
    numel, g = 200, torch.Generator().manual_seed(0)
    kept = torch.arange(0, numel, 2)  # the even positions are active
    counts = torch.zeros(numel)
    trials = 3000
    for _ in range(trials):
        chosen = _rejection_sample(kept, numel, 10, g)
        assert chosen.numel() == 10 and torch.unique(chosen).numel() == 10
        assert bool((chosen % 2 == 1).all())
        counts[chosen] += 1
    odd = counts[1::2]
    expected = trials * 10 / 100
    # Binomial(3000, 0.1): sd ~16.4; 5 sd either side.
    assert float(odd.min()) > expected - 5 * math.sqrt(expected * 0.9)
    assert float(odd.max()) < expected + 5 * math.sqrt(expected * 0.9)
    assert EXACT_DRAW_POSITIONS >= 3_000_000  # MLP-CIFAR's largest layer replays exactly


# --- checkpoints, the command line, layers too large to hold densely ----------------------------


@pytest.mark.slow
def test_an_interrupted_sparse_run_resumes_to_the_same_record(use_plugins, tmp_path):
    """Stopped mid-epoch after a topology update and resumed from its checkpoint, a sparse run
    writes the record of an uninterrupted one (bit for bit on CPU, timings aside)."""
    from test_checkpoints import StopAt, _comparable

    from dstbench.engine.interrupt import RunInterrupted, clear_stop
    from dstbench.engine.single import train_run
    from dstbench.sparsetrain.engine import prepare_sparse

    raw = {
        "model": "mlp[hidden=[16]]",
        "dataset": "digits",
        "epochs": 3,
        "update_period": 7,
        "criterion": "snip",
        "growth": "gradient",
        "seed": 5,
    }

    def train(plugins, path):
        spec = build_spec(raw, plugins.registry)
        return train_run(
            spec,
            plugins=plugins,
            device=torch.device("cpu"),
            checkpoint=path,
            checkpoint_every=0,
            engine="sparse",
            prepare=prepare_sparse,
        ).to_json()

    reference = train(use_plugins(), None)
    assert reference["status"] == "ok" and reference["topology"]["updates"] > 10
    path = tmp_path / f"{reference['run_id']}.pt"  # a checkpoint is named after its run
    for i, step in enumerate((21, 84)):
        plugins = use_plugins((f"stop{i}", StopAt(step=step)))
        clear_stop()
        with pytest.raises(RunInterrupted):
            train(plugins, path)
        clear_stop()
        assert path.exists()
    resumed = train(use_plugins(), path)
    assert resumed["provenance"]["engine"] == "sparse"
    assert [r["step"] for r in resumed["checkpoint"]["resumed"]] == [21, 84]
    assert _comparable(resumed) == _comparable(reference)


def test_the_command_line_runs_the_sparse_engine_and_refuses_unknown_ones(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "run.json"
    args = [sys.executable, "-m", "dstbench", "run", "--model", "mlp", "--dataset", "digits"]
    args += ["--density", "0.1", "--epochs", "2", "--update-period", "20"]
    done = subprocess.run(
        [*args, "--engine", "sparse", "-o", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["provenance"]["engine"] == "sparse"
    assert record["sparse_engine"]["sparse_layers"] == ["1.weight", "3.weight", "5.weight"]
    bad = subprocess.run([*args, "--engine", "sparce"], capture_output=True, text=True)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "'sparce'" in lines[0] and "'sparse'" in lines[0], bad.stderr


def test_a_layer_too_large_to_hold_densely_is_built_sparse(monkeypatch, recorder):
    """Above the dense limit (lowered here) the model is never built densely: the sparse
    layers are drawn directly, the run trains with exact invariants at every update, and the
    record says so."""
    from dstbench.sparsetrain import engine as sparse_engine

    monkeypatch.setattr(sparse_engine, "DENSE_POSITIONS", 1000)
    built: list[str] = []
    original = sparse_engine.build_large

    def spy(spec, meta_model, device):
        built.append(spec.run_id)
        return original(spec, meta_model, device)

    monkeypatch.setattr(sparse_engine, "build_large", spy)
    spec = _spec(
        criterion="magnitude",
        growth="random",
        density=0.1,
        update_period=10,
        distribution="uniform",
    )
    record = dstbench.execute(spec, engine="sparse")
    assert record["status"] == "ok", record.get("error")
    assert built == [record["run_id"]]
    assert record["sparse_engine"]["built_sparse"] is True
    assert record["topology"]["updates"] == 5 and recorder.problems == []
    for name, layer in record["density"]["layers"].items():
        assert layer["target"] == round(0.1 * layer["numel"]), name
    assert record["metrics"]["test_accuracy"] is not None


@pytest.mark.slow
def test_a_digits_study_gives_the_same_cell_means_within_seed_noise(tmp_path):
    """A digits study (three criteria, both growth methods, two densities, three seeds, the
    dense and static baselines: 45 runs, 10 epochs) with each engine through the suite
    runner: every cell's mean test accuracy agrees within the 95% Welch interval of the seed
    spread, and the sparse engine trained every sparse run itself (dense runs are the same on
    every engine)."""
    import json
    import statistics

    from scipy import stats

    from dstbench.suite import run_suite
    from dstbench.suite.loader import build_suite
    from dstbench.suite.store import RunStore

    data = {
        "name": "engines",
        "model": "mlp",
        "dataset": "digits",
        "epochs": 10,
        "densities": [0.05, 0.2],
        "criteria": ["magnitude", "snip", "random"],
        "growth": ["random", "gradient"],
        "seeds": [0, 1, 2],
        "baselines": ["dense", "static"],
    }
    suite = build_suite(data, dstbench.registry(), path=Path("engines.toml"))
    accuracy: dict[str, dict[str, list[float]]] = {}
    for engine in ("single", "sparse"):
        out = tmp_path / engine
        outcome = run_suite(
            suite, output=out, workers=2, device="cpu", engine=engine, stream=io.StringIO()
        )
        assert outcome.counts() == {"ok": 45}, outcome.counts()
        found = accuracy.setdefault(engine, {})
        for _, record in RunStore(out).records():
            assert record is not None
            dense = record["spec"]["method"] == "dense"
            assert record["provenance"]["engine"] == ("single" if dense else engine)
            key = json.dumps({k: v for k, v in record["spec"].items() if k != "seed"})
            found.setdefault(key, []).append(record["metrics"]["test_accuracy"])
    single, sparse = accuracy["single"], accuracy["sparse"]
    assert single.keys() == sparse.keys() and len(single) == 15
    worst = 0.0
    for key, a in single.items():
        b = sparse[key]
        assert len(a) == len(b) == 3
        spread = statistics.variance(a) / 3 + statistics.variance(b) / 3
        half = stats.t.ppf(0.975, 2) * math.sqrt(spread)
        gap = abs(statistics.mean(a) - statistics.mean(b))
        assert gap <= half + 1e-12, (key, a, b)
        worst = max(worst, gap)
    assert worst < 0.01  # under one point of accuracy in every cell
