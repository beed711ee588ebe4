"""DST vs dense training time, side by side in one process: what masks and topology updates cost.

Three runs go through dstbench's real training loop (``dstbench.execute``) on random
CIFAR-sized data: dense, DST with ΔT = 800 and DST with ΔT = 100 (magnitude pruning, gradient
growth, density 0.1, one thread). Each run trains ``--iterations`` iterations (the largest ΔT by
default), so the ΔT = 800 run updates its topology once, at its last iteration, and the
ΔT = 100 run eight times: the ratios include the update cost amortized over ΔT iterations.

The runs train in lockstep, one thread each: they take turns one iteration at a time (dense,
DST ΔT=800, DST ΔT=100, dense, ...), and only the run whose turn it is computes, so slow
drifts of the machine's load hit every mode alike. Whole runs measured one after the other
differ by several percent on a shared machine; in lockstep a ratio is good to about 1%. An
iteration is timed from its forward to the next one (the optimizer step, any topology update and
the engine's checks included) by a plugin's hooks; the time a run waits for its turn is not
counted. Each run has data of its own, so no run finds its batch in the cache, and all run on
one CPU (``--cpu``), so none is stuck on a busier one. What lockstep cannot cancel is the
variation between runs themselves (the same masked step can cost 0.5 ms more in one run than in
another): ``--repeats`` trains several groups and prints medians over them, figure by figure.

    python benchmarks/step_overhead.py                      # mlp_cifar, about a minute and a half
    python benchmarks/step_overhead.py --repeats 3          # medians of three lockstep groups
    python benchmarks/step_overhead.py --models resnet20 --periods 400 100

Printed per mode: the median iteration (``ms/step``); the DST/dense ratio, robust to bursts of
load (the median per-turn ratio plus the median update iteration's excess, amortized)
and ``(raw)``, total over total; ``step ms``, the median time from the end of backward to the
next forward (optimizer step, zeroing the gradients, loss bookkeeping), whose DST - dense
difference is what the masked optimizer step costs over the plain one; and one topology
update's cost, as the engine times it (``ms/update``: prune, grow, hooks) and as an update
iteration's excess over an ordinary one (``update iter +ms``: also the invariant check). On a
CPU only the ratios mean something; absolute times depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

import torch

import dstbench
from dstbench import DatasetParts, TensorSplit, hookimpl
from dstbench.plugins import load_plugins

BATCH = {"mlp_cifar": 128, "mlp": 128, "resnet20": 32}
#: Iterations per epoch (at most): the random data set holds this many batches.
EPOCH_ITERATIONS = 100
#: Seconds a run waits for its turn before the benchmark gives up (a run that failed early).
TURN_TIMEOUT = 600.0


@functools.cache
def _random_cifar(samples: int, seed: int) -> DatasetParts:
    """Random CIFAR-shaped tensors, built once per seed."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (samples,), generator=generator)
    return DatasetParts(
        train=TensorSplit(x, y),
        test=TensorSplit(x[:256], y[:256]),
        input_shape=(3, 32, 32),
        num_classes=10,
    )


class RandomCifar:
    """A dataset plugin: random CIFAR-shaped tensors (no file, no download)."""

    @hookimpl
    def dstbench_register_datasets(self, register):
        def random_cifar(ctx, samples: int = 1024, seed: int = 0) -> DatasetParts:
            return _random_cifar(samples, seed)

        register("random_cifar", random_cifar, description="random CIFAR-shaped data")


@dataclass
class RunTimes:
    """What the lockstep plugin measured of one run."""

    #: Seconds per training iteration (forward to next forward), in order.
    iterations: list[float] = field(default_factory=list)
    #: Seconds from the end of each iteration's backward to the next forward.
    segments: list[float] = field(default_factory=list)
    #: The engine's step counter at each iteration that ran a topology update (1-based).
    update_steps: list[int] = field(default_factory=list)


class Lockstep:
    """A plugin that makes runs in several threads take turns, one iteration at a time.

    A run joins the rotation in ``dstbench_run_start`` (once all have joined, the first in
    order starts), hands the turn on at every training forward, and leaves after its last
    epoch; it then waits until every run has left, so that its evaluation does not compete
    with the others' last iterations.
    """

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.times = {label: RunTimes() for label in labels}
        self._local = threading.local()
        self._cond = threading.Condition()
        self._order: list[str] = []
        self._turn: str | None = None
        self._done: set[str] = set()
        self._aborted = False

    # --- the rotation (all under self._cond) ------------------------------------------------

    def _wait(self, predicate) -> None:
        if not self._cond.wait_for(lambda: predicate() or self._aborted, TURN_TIMEOUT):
            self._aborted = True
            self._cond.notify_all()
        if self._aborted:
            raise RuntimeError("lockstep aborted: a run stopped before the others")

    def _join(self, label: str) -> None:
        with self._cond:
            self._order.append(label)
            self._order.sort(key=self.labels.index)
            if len(self._order) == len(self.labels):
                self._turn = self._order[0]
                self._cond.notify_all()
            self._wait(lambda: self._turn == label)

    def _hand_on(self, label: str) -> None:
        with self._cond:
            at = self._order.index(label)
            self._turn = self._order[(at + 1) % len(self._order)]
            self._cond.notify_all()
            self._wait(lambda: self._turn == label)

    def _leave(self, label: str) -> None:
        with self._cond:
            self._done.add(label)
            if label in self._order:
                at = self._order.index(label)
                self._order.remove(label)
                self._turn = self._order[at % len(self._order)] if self._order else None
                self._cond.notify_all()
            self._wait(lambda: len(self._done) == len(self.labels))

    def abort(self) -> None:
        """Release every waiting run (called when a run ended without joining)."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()

    def joined(self, label: str) -> bool:
        """Whether ``label`` has joined (or already left) the rotation."""
        with self._cond:
            return label in self._order or label in self._done

    # --- per thread -----------------------------------------------------------------------

    def bind(self, label: str) -> None:
        """Mark the calling thread as the one training run ``label``."""
        self._local.label = label

    @hookimpl
    def dstbench_run_start(self, run):
        label = self._local.label
        times = self.times[label]
        state = {"started": None, "backward_end": None, "steps": 0}

        def before_forward(module, args):
            if not module.training or state["steps"] < 0:
                return  # evaluation, or the run has left the rotation
            now = time.perf_counter()
            if state["started"] is not None:
                times.iterations.append(now - state["started"])
                times.segments.append(now - state["backward_end"])
                self._hand_on(label)
            state["started"] = time.perf_counter()
            state["steps"] += 1

        def after_grad(param):
            state["backward_end"] = time.perf_counter()  # the last parameter's counts

        run.model.register_forward_pre_hook(before_forward)
        for param in run.model.parameters():
            param.register_post_accumulate_grad_hook(after_grad)
        run.scratch["lockstep"] = state
        self._join(label)

    @hookimpl
    def dstbench_topology_update(self, run, update):
        self.times[self._local.label].update_steps.append(update.step)

    @hookimpl
    def dstbench_epoch_end(self, run, epoch):
        if epoch.epoch == run.spec["epochs"]:
            state = run.scratch["lockstep"]
            now = time.perf_counter()
            times = self.times[self._local.label]
            times.iterations.append(now - state["started"])
            times.segments.append(now - state["backward_end"])
            state["steps"] = -1
            self._leave(self._local.label)

    @hookimpl
    def dstbench_run_end(self, run, record):
        if run.scratch.get("lockstep", {}).get("steps", -1) >= 0:
            self._leave(self._local.label)  # a run stopped early: do not block the others


@dataclass
class Mode:
    """One run of a lockstep group."""

    label: str
    method: str
    period: int


@dataclass
class Result:
    """One mode's figures from one lockstep group (times in ms)."""

    #: Median iteration without a topology update.
    ms_per_step: float
    #: Robust DST/dense ratio, updates included (see :func:`_summarize`).
    ratio: float
    #: Total training time over the dense run's: every burst of machine noise included.
    raw_ratio: float
    #: Median step segment (backward end to next forward) of iterations without an update.
    segment_ms: float
    updates: int
    #: The engine's own timing of one update (``timings.update_seconds`` / updates).
    update_ms: float | None
    #: Median excess of an update iteration over the median ordinary one.
    update_excess_ms: float | None


def _spec(model: str, mode: Mode, iterations: int, data_seed: int) -> dict:
    batch = BATCH.get(model, 64)
    # Epochs of (at most) 100 iterations keep the random data small; the updates still come
    # every ΔT iterations counted from the start, whatever the epoch length.
    per_epoch = math.gcd(iterations, EPOCH_ITERATIONS)
    return {
        "model": model,
        # Data of its own for every run: were it shared, the runs after the first in a turn
        # would find the batch the first one gathered still in the cache.
        "dataset": f"random_cifar[samples={per_epoch * batch},seed={data_seed}]",
        "method": mode.method,
        "criterion": "magnitude",
        "growth": "gradient",
        "density": 0.1,
        "update_period": mode.period,
        "epochs": iterations // per_epoch,
        "batch_size": batch,
        "val_fraction": 0.0,
        "seed": 0,
    }


def run_group(model: str, modes: list[Mode], iterations: int, device: str) -> dict[str, Result]:
    """Train one run per mode in lockstep and summarize what each cost."""
    lockstep = Lockstep([m.label for m in modes])
    plugins = load_plugins(
        extra=[("random-cifar", RandomCifar()), ("lockstep", lockstep)],
        env={"DSTBENCH_LOAD_PLUGINS": "random-cifar,lockstep"},
    )
    records: dict[str, dict] = {}

    def train(mode: Mode) -> None:
        lockstep.bind(mode.label)
        records[mode.label] = dstbench.execute(
            _spec(model, mode, iterations, modes.index(mode)), plugins=plugins, device=device
        )

    threads = []
    for mode in modes:
        # One setup at a time: model initialisation seeds torch's global generator.
        thread = threading.Thread(target=train, args=(mode,), name=mode.label)
        thread.start()
        threads.append(thread)
        while thread.is_alive() and not lockstep.joined(mode.label):
            time.sleep(0.01)
        if not thread.is_alive():
            lockstep.abort()
    for thread in threads:
        thread.join()
    for mode in modes:
        record = records.get(mode.label, {})
        if record.get("status") != "ok":
            raise SystemExit(
                f"{model} {mode.label} run failed: {record.get('error') or record.get('reason')}"
            )

    dense = lockstep.times[modes[0].label]
    results = {}
    for mode in modes:
        times, record = lockstep.times[mode.label], records[mode.label]
        updates = int(record["topology"]["updates"])
        expected = iterations // mode.period if mode.method == "dst" else 0
        assert updates == expected == len(times.update_steps), (mode, record["topology"])
        results[mode.label] = _summarize(times, dense, record, updates)
    return results


def _summarize(times: RunTimes, dense: RunTimes, record: dict, updates: int) -> Result:
    """One run's figures against the dense run of its group.

    The ratio is robust to the bursts of load a shared machine produces (a burst lands on one
    run of a turn, not all): the median, over the turns without an update, of the run's
    iteration time over the dense run's in the same turn, plus the median update iteration's
    excess over an ordinary iteration, times the number of updates, spread over all iterations
    and scaled by the dense median.
    """
    update_at = {step - 1 for step in times.update_steps}  # iteration indices (0-based)
    ordinary = [t for i, t in enumerate(times.iterations) if i not in update_at]
    typical = statistics.median(ordinary)
    pairs = [
        t / d
        for i, (t, d) in enumerate(zip(times.iterations, dense.iterations, strict=True))
        if i not in update_at
    ]
    excess = [times.iterations[i] - typical for i in sorted(update_at)]
    # The median update, not the mean: one update iteration hit by a burst would count as much
    # as all the ordinary iterations' noise that the median ratio leaves out.
    per_update = statistics.median(excess) if excess else 0.0
    amortized = (
        per_update * len(excess) / len(times.iterations) / statistics.median(dense.iterations)
    )
    segments = [t for i, t in enumerate(times.segments) if i not in update_at]
    return Result(
        ms_per_step=typical * 1e3,
        ratio=statistics.median(pairs) + amortized,
        raw_ratio=sum(times.iterations) / sum(dense.iterations),
        segment_ms=statistics.median(segments) * 1e3,
        updates=updates,
        update_ms=record["timings"]["update_seconds"] / updates * 1e3 if updates else None,
        update_excess_ms=per_update * 1e3 if excess else None,
    )


def _median(results: list[Result], name: str) -> float | None:
    values = [getattr(r, name) for r in results if getattr(r, name) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp_cifar"])
    parser.add_argument(
        "--periods", nargs="+", type=int, default=[800, 100], help="ΔT of the DST runs"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="iterations per run (default: the largest ΔT, so that it updates once)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="lockstep groups per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="pin the runs to this CPU (default: the first this process may use; -1: no pinning)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pinned = _pin(args.cpu, args.threads)
    iterations = args.iterations or max(args.periods)
    modes = [Mode("dense", "dense", iterations)]
    modes += [Mode(f"DST ΔT={p}", "dst", p) for p in args.periods]

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}, "
        f"{iterations} iterations per run, {args.repeats} lockstep group(s) per model, "
        f"{f'pinned to CPU {pinned}' if pinned is not None else 'not pinned'}"
    )
    for model in args.models:
        groups = [run_group(model, modes, iterations, args.device) for _ in range(args.repeats)]
        print(f"\n{model} (batch {BATCH.get(model, 64)}, density 0.1, magnitude + gradient)")
        print(
            f"{'':>12} {'ms/step':>8} {'DST/dense':>9} {'(raw)':>7} {'step ms':>8} "
            f"{'updates':>7} {'ms/update':>9} {'update iter +ms':>15}"
        )
        summary = {}
        for mode in modes:
            per = [group[mode.label] for group in groups]
            summary[mode.label] = s = {name: _median(per, name) for name in Result.__annotations__}
            print(
                f"{mode.label:>12} {s['ms_per_step']:8.2f} {s['ratio']:9.3f} "
                f"{s['raw_ratio']:7.3f} {s['segment_ms']:8.2f} {s['updates']:7.0f} "
                f"{_optional(s['update_ms'], 9)} {_optional(s['update_excess_ms'], 15)}"
                + (
                    f"   (groups: {', '.join(f'{r.ratio:.3f}' for r in per)})"
                    if len(per) > 1
                    else ""
                )
            )
        plain = summary["dense"]["segment_ms"]
        masked = statistics.median(summary[m.label]["segment_ms"] for m in modes[1:])
        print(
            f"masked vs plain optimizer step (step ms): {masked:.2f} vs {plain:.2f} ms, "
            f"{masked - plain:+.2f} ms ({(masked - plain) / summary['dense']['ms_per_step']:+.1%} "
            "of a dense iteration)"
        )
        print(
            "DST/dense training-time ratio (updates included): "
            + ", ".join(f"{m.label} {summary[m.label]['ratio']:.3f}" for m in modes[1:])
        )


def _pin(cpu: int | None, threads: int) -> int | None:
    """Pin this process (and the run threads it starts) to one CPU; the CPU, or None.

    Only one run computes at a time, so one CPU is all they need. Unpinned, each run's thread
    tends to stay on the CPU it last ran on, and on a shared machine one CPU can be busier
    than another (or share its core with a busy hyperthread): a whole run would then be slower
    than the others, which lockstep does not cancel.
    """
    if cpu == -1 or threads != 1 or not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0)) if cpu is None else cpu
    os.sched_setaffinity(0, {cpu})
    return cpu


def _optional(value: float | None, width: int) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    main()
