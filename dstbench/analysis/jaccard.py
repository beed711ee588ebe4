"""The pruned-set overlap of criteria, from run records (the paper's Fig. 6).

Runs with ``compare_criteria`` record, at every topology update, the Jaccard index
J(P_a, P_b) = |P_a ∩ P_b| / |P_a ∪ P_b| of the sets each compared criterion would prune on the
same state, per layer and pooled over layers (:mod:`dstbench.sparse.overlap`). This module
aggregates them:

* runs are grouped by setup (model, dataset), density and any other spec key that varies
  (the training criterion and the seed excepted: their runs are averaged together);
* within a run, each pair's index is averaged over the updates (every update weighs the
  same); the group's value is the mean of those run averages (every run weighs the same),
  and the spread is the 95% t interval over runs;
* the evolution over training is the mean over runs at each update step;
* the chance level is the index two uniformly random sets of the same sizes would have in
  expectation: with n of N active weights pruned (ζ = n/N), |A ∩ B| = n²/N and
  |A ∪ B| = 2n − n²/N, so J = ζ/(2 − ζ); pooled over layers, the expected intersections and
  unions are summed. It is computed from the same updates and averaged the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from tabulate import tabulate

from dstbench.analysis.report import Report, figure_name
from dstbench.errors import DstbenchError
from dstbench.leaderboard import stats
from dstbench.leaderboard.data import Entry, Results
from dstbench.leaderboard.figures import new_figure, palette, png_bytes
from dstbench.leaderboard.table import _value_text, _varying_keys

POOLED = "pooled"
#: Update steps shown as columns of the evolution table (evenly spaced among all steps).
MAX_STEPS_SHOWN = 8
_UNGROUPED = ("criterion", "seed", "compare_criteria", "jaccard_at_init")
#: Keys that do not matter for an overlap at initialisation (nothing is trained).
_TRAINING_ONLY = (
    "epochs", "update_period", "schedule", "growth", "lr", "momentum", "nesterov",
    "weight_decay", "lr_milestones", "lr_gamma", "update_order", "reset_momentum",
)  # fmt: skip
#: Short names in group titles.
_SHORT = {"prune_fraction": "ζ"}


def chance_jaccard(sizes: Sequence[tuple[int, int]]) -> float:
    """Expected Jaccard index of two independent uniformly random pruned sets.

    :param sizes: ``(n, N)`` per layer: n of the layer's N active weights are pruned.
    """
    inter = sum(n * n / total for n, total in sizes if total)
    union = sum(2 * n - n * n / total for n, total in sizes if total)
    return 1.0 if union == 0 else inter / union


def _pair(a: str, b: str) -> str:
    return f"{a}|{b}" if a <= b else f"{b}|{a}"


@dataclass
class RunOverlap:
    """One run's overlap: per update step, per scope (layer or pooled), pair -> J."""

    run_id: str
    labels: list[str]
    steps: dict[int, dict[str, dict[str, float]]]
    #: step -> scope -> chance level.
    chance: dict[int, dict[str, float]]

    def average(self, scope: str) -> tuple[dict[str, float], float | None]:
        """Mean over updates of every pair's index, and of the chance level, in ``scope``."""
        pairs: dict[str, list[float]] = {}
        for per_scope in self.steps.values():
            for pair, value in per_scope.get(scope, {}).items():
                pairs.setdefault(pair, []).append(value)
        chance = [c[scope] for c in self.chance.values() if scope in c]
        mean = {p: statistics.fmean(v) for p, v in pairs.items()}
        return mean, (statistics.fmean(chance) if chance else None)


def run_overlap(record: Mapping[str, Any]) -> RunOverlap | None:
    """The overlap a record holds (None when it has none)."""
    entries = (record.get("analysis") or {}).get("overlap") or []
    if not entries:
        return None
    labels = sorted(
        {lab for e in entries for pair in e.get("pooled", {}) for lab in pair.split("|")}
    )
    targets = {
        name: int(layer.get("target", 0))
        for name, layer in ((record.get("density") or {}).get("layers") or {}).items()
    }
    fractions = {
        int(u["step"]): float(u["prune_fraction"])
        for u in (record.get("topology") or {}).get("per_update", [])
        if "step" in u and "prune_fraction" in u
    }
    steps: dict[int, dict[str, dict[str, float]]] = {}
    chance: dict[int, dict[str, float]] = {}
    for entry in entries:
        step = int(entry.get("step", 0))
        scopes: dict[str, dict[str, float]] = {POOLED: dict(entry.get("pooled", {}))}
        for layer, pairs in (entry.get("layers") or {}).items():
            scopes[layer] = dict(pairs)
        steps[step] = scopes
        zeta = entry.get("prune_fraction", fractions.get(step))
        if zeta is None:
            continue
        sizes = {
            layer: (min(math.ceil(zeta * targets[layer]), targets[layer]), targets[layer])
            for layer in entry.get("layers") or {}
            if layer in targets
        }
        per = {layer: chance_jaccard([size]) for layer, size in sizes.items()}
        per[POOLED] = chance_jaccard(list(sizes.values()))
        chance[step] = per
    return RunOverlap(str(record.get("run_id", "")), labels, steps, chance)


@dataclass
class Group:
    """Runs averaged together: one setup, density and value of the other varying keys."""

    title: str
    runs: list[RunOverlap] = field(default_factory=list)
    training: set[str] = field(default_factory=set)
    #: Compared criteria in the order the runs list them.
    order: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        """The compared criteria, in the runs' order (any others after, by name)."""
        found = {lab for run in self.runs for lab in run.labels}
        return [c for c in self.order if c in found] + sorted(found - set(self.order))

    @property
    def scopes(self) -> list[str]:
        layers = sorted(
            {s for run in self.runs for per in run.steps.values() for s in per} - {POOLED}
        )
        return [POOLED, *layers]

    def matrix(self, scope: str) -> tuple[dict[str, stats.Interval], stats.Interval | None]:
        """Pair -> mean over runs of the run averages (with its t interval); the chance level."""
        values: dict[str, list[float]] = {}
        chances: list[float] = []
        for run in self.runs:
            mean, chance = run.average(scope)
            for pair, value in mean.items():
                values.setdefault(pair, []).append(value)
            if chance is not None:
                chances.append(chance)
        return (
            {pair: stats.t_interval(v) for pair, v in sorted(values.items())},
            stats.t_interval(chances) if chances else None,
        )

    def evolution(self) -> tuple[list[int], dict[str, dict[int, float]], dict[int, float]]:
        """Update steps, pair -> step -> mean pooled index over runs, step -> chance level."""
        steps = sorted({s for run in self.runs for s in run.steps})
        by_pair: dict[str, dict[int, list[float]]] = {}
        chance: dict[int, list[float]] = {}
        for run in self.runs:
            for step, scopes in run.steps.items():
                for pair, value in scopes.get(POOLED, {}).items():
                    by_pair.setdefault(pair, {}).setdefault(step, []).append(value)
                if step in run.chance:
                    chance.setdefault(step, []).append(run.chance[step][POOLED])
        means = {
            pair: {s: statistics.fmean(v) for s, v in sorted(per.items())}
            for pair, per in sorted(by_pair.items())
        }
        return steps, means, {s: statistics.fmean(v) for s, v in sorted(chance.items())}


def overlap_groups(entries: Sequence[Entry], where: str) -> list[Group]:
    """Group the records with overlap data; raise a one-line error when there are none.

    Runs at initialisation (``jaccard_at_init``) and during training are grouped apart, each
    by the keys that vary among runs of its own kind (training-only keys such as the epochs
    play no part at initialisation).
    """
    ok = [e for e in entries if e.record is not None and e.status == "ok"]
    with_overlap = [(e, run_overlap(e.record)) for e in ok if e.record is not None]
    usable = [(e, r) for e, r in with_overlap if r is not None]
    if not usable:
        msg = (
            f"{where}: no finished run recorded the pruned-set overlap; run with "
            'compare_criteria = ["magnitude", "snip", ...] (or jaccard_at_init = true)'
        )
        raise DstbenchError(msg)
    kinds = {
        at_init: [(e, r) for e, r in usable if bool(e.spec.get("jaccard_at_init")) == at_init]
        for at_init in (True, False)
    }
    groups: dict[str, Group] = {}
    for at_init, members in kinds.items():
        if not members:
            continue
        varying = [
            k
            for k in _varying_keys([e for e, _ in members])
            if k not in _UNGROUPED and (not at_init or k not in _TRAINING_ONLY)
        ]
        for entry, run in members:
            spec = entry.spec
            parts = [
                f"{spec['model']['name']} on {spec['dataset']['name']}",
                f"d={spec['density']:g}",
                "at initialisation" if at_init else "during training",
            ]
            for key in varying:
                value = spec.get(key)
                if isinstance(value, dict) and "name" in value:
                    value = value["name"]
                parts.append(f"{_SHORT.get(key, key)}={_value_text(value)}")
            title = ", ".join(parts)
            group = groups.setdefault(title, Group(title))
            group.runs.append(run)
            if spec.get("criterion") and not at_init:
                group.training.add(str(spec["criterion"]["name"]))
            for label in (c["name"] for c in spec.get("compare_criteria") or []):
                if label not in group.order:
                    group.order.append(label)
    return [groups[t] for t in sorted(groups)]


def _matrix_markdown(labels: list[str], matrix: Mapping[str, stats.Interval]) -> str:
    rows = []
    for a in labels:
        cells = []
        for b in labels:
            if a == b:
                cells.append("1")
                continue
            value = matrix.get(_pair(a, b))
            cells.append("–" if value is None else f"{value.estimate:.3f}")
        rows.append([a, *cells])
    return tabulate(
        rows,
        headers=["", *labels],
        tablefmt="github",
        colalign=("left", *("right" for _ in labels)),
        disable_numparse=True,
    )


def _interval_text(value: stats.Interval | None) -> str:
    if value is None:
        return "–"
    half = value.half_width
    return f"{value.estimate:.3f}" + (f" ± {half:.3f}" if half is not None else "")


def _layers_markdown(group: Group) -> str:
    scopes = group.scopes
    per_scope = {s: group.matrix(s) for s in scopes}
    rows = []
    for a, b in combinations(group.labels, 2):
        pair = _pair(a, b)
        rows.append([f"{a} – {b}", *(_interval_text(per_scope[s][0].get(pair)) for s in scopes)])
    rows.append(["*chance ζ/(2−ζ)*", *(_interval_text(per_scope[s][1]) for s in scopes)])
    return tabulate(
        rows,
        headers=["pair", *scopes],
        tablefmt="github",
        colalign=("left", *("right" for _ in scopes)),
        disable_numparse=True,
    )


def _shown_steps(steps: list[int]) -> list[int]:
    if len(steps) <= MAX_STEPS_SHOWN:
        return steps
    picks = {round(i * (len(steps) - 1) / (MAX_STEPS_SHOWN - 1)) for i in range(MAX_STEPS_SHOWN)}
    return [steps[i] for i in sorted(picks)]


def _evolution_markdown(group: Group) -> str:
    steps, means, chance = group.evolution()
    shown = _shown_steps(steps)
    rows = [
        [pair.replace("|", " – "), *(_num(per.get(s)) for s in shown)]
        for pair, per in means.items()
    ]
    rows.append(["*chance*", *(_num(chance.get(s)) for s in shown)])
    return tabulate(
        rows,
        headers=["pair \\ step", *(str(s) for s in shown)],
        tablefmt="github",
        colalign=("left", *("right" for _ in shown)),
        disable_numparse=True,
    )


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


#: Line styles cycled with the colours, so that 15 pairs (6 criteria) stay apart.
_STYLES = ("-", "--", "-.", ":")


def _heatmap(ax: Any, labels: list[str], matrix: Mapping[str, stats.Interval], title: str) -> Any:
    """One Jaccard matrix as an annotated heatmap on ``ax``; the image, for a colour bar."""
    grid = [
        [
            1.0 if a == b else (matrix[_pair(a, b)].estimate if _pair(a, b) in matrix else math.nan)
            for b in labels
        ]
        for a in labels
    ]
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
    size = 8 if len(labels) <= 6 else 6.5
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if not math.isnan(value):
                color = "white" if value < 0.6 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=size, color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_title(title, fontsize=8)
    return image


def overlap_figure(group: Group) -> Any:
    """The pooled Jaccard matrix and one per layer as heatmaps (a row of them), and below
    them the pooled index over training, its legend beside the plot so that no curve is
    hidden; each of the up to 20 pairs has its own colour and line style."""
    labels = group.labels
    layers = [s for s in group.scopes if s != POOLED]
    steps, means, chance_steps = group.evolution()
    heatmaps = 1 + len(layers)
    cell = max(3.2, 0.55 * len(labels) + 1.2)
    width = max(cell * heatmaps, 11.0 if len(steps) > 1 else 0.0)
    height = cell + (4.2 if len(steps) > 1 else 0.0)
    figure = new_figure(width, height)
    figure.set_layout_engine("constrained")  # room for the outside legend and the colour bar
    rows = 2 if len(steps) > 1 else 1
    grid = figure.add_gridspec(rows, heatmaps, height_ratios=[cell, 4.2][:rows])
    matrix, chance = group.matrix(POOLED)
    chance_text = f"chance {chance.estimate:.3f}" if chance is not None else "chance unknown"
    image = _heatmap(figure.add_subplot(grid[0, 0]), labels, matrix, f"pooled ({chance_text})")
    for index, layer in enumerate(layers, 1):
        per_layer, layer_chance = group.matrix(layer)
        text = f"chance {layer_chance.estimate:.3f}" if layer_chance is not None else ""
        _heatmap(figure.add_subplot(grid[0, index]), labels, per_layer, f"{layer} {text}".strip())
    figure.colorbar(image, ax=figure.axes, fraction=0.02, pad=0.02)
    if len(steps) > 1:
        ax = figure.add_subplot(grid[1, :])
        colors = palette(list(means))
        for index, (pair, per) in enumerate(means.items()):
            xs = sorted(per)
            ax.plot(
                xs,
                [per[s] for s in xs],
                color=colors[pair],
                linestyle=_STYLES[(index // 10) % len(_STYLES)] if len(means) > 10 else "-",
                linewidth=1.2,
                label=pair.replace("|", " – "),
            )
        if chance_steps:
            xs = sorted(chance_steps)
            ax.plot(
                xs,
                [chance_steps[s] for s in xs],
                color="#888888",
                linestyle=":",
                linewidth=1.8,
                label="chance ζ/(2−ζ)",
            )
        ax.set_xlabel("iteration")
        ax.set_ylabel("pooled Jaccard index")
        ax.set_ylim(0.0, 1.02)
        ax.set_title("evolution over training (mean over runs)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            ncol=1 if len(means) <= 12 else 2,
            borderaxespad=0.0,
        )
    figure.suptitle(group.title, fontsize=10)
    return figure


def overlap_png(group: Group) -> bytes:
    """:func:`overlap_figure` as PNG bytes."""
    return png_bytes(overlap_figure(group))


def _asks_overlap(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("jaccard_at_init")) or len(spec.get("compare_criteria") or []) > 1


def missing_overlap(entries: Sequence[Entry]) -> list[str]:
    """One line per kind (at initialisation, during training) of the runs that asked for the
    overlap and have none to show (failed, not run yet, or without overlap data), so that a
    missing part of the study is said, never silently left out."""
    lines = []
    for at_init, kind in ((True, "at initialisation (Fig. 6a)"), (False, "during training")):
        asked = [
            e
            for e in entries
            if _asks_overlap(e.spec) and bool(e.spec.get("jaccard_at_init")) == at_init
        ]
        absent = [
            e
            for e in asked
            if e.status != "ok" or e.record is None or run_overlap(e.record) is None
        ]
        if not absent:
            continue
        why: dict[str, int] = {}
        for e in absent:
            reason = "not run yet" if e.record is None else e.status
            reason = "no overlap recorded" if reason == "ok" else reason
            why[reason] = why.get(reason, 0) + 1
        counts = ", ".join(f"{n} {reason}" for reason, n in sorted(why.items()))
        part = "is missing" if len(absent) == len(asked) else "is incomplete"
        lines.append(
            f"**The overlap {kind} {part}:** {len(absent)} of its {len(asked)} runs have no "
            f"overlap to show ({counts})."
        )
    return lines


def overlap_report(results: Results, *, stem: str = "overlap") -> Report:
    """Jaccard matrices per layer and pooled, their evolution, and a heatmap per group."""
    groups = overlap_groups(results.entries, results.title)
    out = [
        f"# Pruned-set overlap (Jaccard): {results.title}",
        "",
        "<!-- Generated by `dstbench analyze overlap` from the run records; do not edit. -->",
        "",
        "J(P_a, P_b) = |P_a ∩ P_b| / |P_a ∪ P_b| of the weights criteria a and b would prune "
        "on the same state (weights, mask, gradient) at each topology update. Per run, each "
        "pair's index is averaged over the updates; the table shows the mean of those run "
        "averages over the group's runs (seeds and training criteria alike) ± half-width of "
        "the 95% t interval over runs. *pooled*: intersections and unions summed over layers. "
        "*chance*: the expected index of two uniformly random sets of the same sizes, ζ/(2−ζ) "
        "for a pruned fraction ζ, averaged the same way.",
        "",
    ]
    missing = missing_overlap(results.entries)
    if missing:
        out += [*missing, ""]
    figures: dict[str, bytes] = {}
    for group in groups:
        name = figure_name(stem, group.title)
        figures[name] = overlap_png(group)
        matrix, chance = group.matrix(POOLED)
        training = ", ".join(sorted(group.training)) or "none (no training)"
        out += [
            f"## {group.title}",
            "",
            f"{len(group.runs)} run(s); training criteria: {training}; chance level "
            f"(pooled): {_interval_text(chance)}.",
            "",
            f"![{group.title}: Jaccard heatmap]({name})",
            "",
            "Pooled over layers:",
            "",
            _matrix_markdown(group.labels, matrix),
            "",
            "Per layer:",
            "",
            _layers_markdown(group),
            "",
        ]
        steps = sorted({s for run in group.runs for s in run.steps})
        if len(steps) > 1:
            out += [
                "Over training (pooled; mean over runs at each update step):",
                "",
                _evolution_markdown(group),
                "",
            ]
    return Report("\n".join(out).rstrip("\n") + "\n", figures)
