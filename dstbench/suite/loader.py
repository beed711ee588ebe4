"""Suite files: validate everything, then expand into the run matrix.

A suite names one or more *setups* (a model, a dataset and their training hyperparameters)
and the sparsity grid to run on each. Every list expands to its cartesian product, ``exclude``
removes cells, and each cell is normalized with the engine's own rules
(:func:`dstbench.engine.spec.normalize_spec`), so a suite accepts exactly the values a run
accepts and a cell's id is the run's id (:func:`dstbench.engine.spec.spec_hash`).

Layout (every key optional except a model and a dataset)::

    name = "quick"                     # results/<name>/ (default: the file's stem)
    description = "..."
    jobs = 2                           # default for -j
    executor = "local"                 # or {name = "...", param = value}
    fidelity = "default"               # or "paper": the paper code's behaviour
    data_root = "/data"                # default for --data-root (relative: to this file)
    download = false                   # default for --download
    timeout = 7200                     # seconds a run may take (default for --timeout)

    model = "mlp"                      # a setup at the top level, or [[setups]] below
    dataset = "digits"
    epochs = 20                        # any run-spec key (lists sweep)

    densities = [0.05, 0.1, 0.2]       # the grid
    criteria = ["magnitude", "mest[lam=0.1]", {name = "mest", lam = [1.0, 10.0]}]
    growth = ["random", "gradient"]
    seeds = [0, 1]
    distribution = "erk"
    update_period = 50
    prune_fraction = 0.5
    schedule = "cosine"
    baselines = ["dense", "static"]
    exclude = [{criterion = "snip", growth = "random", density = 0.05}]

    [[setups]]                         # each setup inherits the top level and overrides it
    model = "resnet56"
    dataset = "cifar10"

Everything is checked before anything runs; a problem raises :class:`SuiteError` with one line
naming the file, the key (``setups[1].densities[2]``) and what was expected.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dstbench.contracts.spec import describe_spec, spec_hash
from dstbench.engine.spec import (
    FIELDS,
    PAPER_FIDELITY,
    normalize_spec,
    paper_criterion,
    paper_growth,
)
from dstbench.errors import DstbenchError, SpecError, SuiteError, choices_text, did_you_mean
from dstbench.labels import detail_text, value_text, varying_keys
from dstbench.registry import Registry
from dstbench.resolve import lookup, parse_component, resolve_component
from dstbench.suite.source import parse_suite_text, read_suite_text

#: The sparsity grid: suite key -> run-spec key. Each takes one value or a list.
GRID_KEYS: dict[str, str] = {
    "densities": "density",
    "criteria": "criterion",
    "growth": "growth",
    "seeds": "seed",
    "distribution": "distribution",
    "update_period": "update_period",
    "prune_fraction": "prune_fraction",
    "schedule": "schedule",
}
#: What a setup is made of.
SETUP_KEYS: tuple[str, ...] = ("model", "dataset")
#: Run-spec keys a suite sets under their own name: the training hyperparameters.
HYPER_KEYS: tuple[str, ...] = tuple(
    key for key in FIELDS if key not in {*GRID_KEYS.values(), *SETUP_KEYS, "method"}
)
#: Keys allowed at the top level and in a setup, besides the ones above.
OPTION_KEYS: tuple[str, ...] = ("baselines", "exclude", "fidelity")
#: Keys allowed only at the top level.
META_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "jobs",
    "executor",
    "engine",
    "group",
    "setups",
    "data_root",
    "download",
    "timeout",
    "checkpoint_every",
)
#: Longest suite name: it names a directory, and file systems cap a name at 255 bytes.
MAX_NAME = 100

BASELINES: tuple[str, ...] = ("dense", "static")
FIDELITIES: tuple[str, ...] = ("default", "paper")

#: Likely slips (the run-spec or plural spelling) and the suite key meant.
#: Grid keys that a suite also takes under the name of their ``dstbench run`` option, with
#: one value or a list: ``density = 0.1`` is ``densities = [0.1]``.
RUN_OPTION_NAMES: dict[str, str] = {
    "density": "densities",
    "criterion": "criteria",
    "seed": "seeds",
}

_ALIASES: dict[str, str] = {
    "method": "baselines",
    "baseline": "baselines",
    "models": "model",
    "datasets": "dataset",
    "setup": "setups",
    "excludes": "exclude",
    "schedules": "schedule",
    "distributions": "distribution",
}

_SETUP_ALLOWED: tuple[str, ...] = (*SETUP_KEYS, *GRID_KEYS, *HYPER_KEYS, *OPTION_KEYS)
_TOP_ALLOWED: tuple[str, ...] = (*META_KEYS, *_SETUP_ALLOWED)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_LIST_FIELD_TYPES = ("fractions", "components:")
_MISSING = object()


def _constant(cells: Sequence[Cell], key: str) -> str | None:
    """The one value (as text) ``key`` takes in the DST runs of ``cells``, or None."""
    runs = [c.spec for c in cells if c.spec.get("method") == "dst"] or [c.spec for c in cells]
    # through JSON, as records hold them: tuples read as lists
    values = {
        value_text(json.loads(json.dumps(spec.get(key, FIELDS[key].default)))) for spec in runs
    }
    return values.pop() if len(values) == 1 else None


def setup_labels(per_setup: Sequence[Sequence[Cell]], wheres: Sequence[str]) -> list[str]:
    """One display label per setup: ``model/dataset``, and where several setups share a model
    and dataset, the fewest keys that tell them apart (``mlp/digits jaccard_at_init=true``;
    yes/no flags first, the model's and dataset's parameters last), else their place in the
    file (``mlp/digits setups[1]``)."""
    base = [cells[0].setup if cells else "" for cells in per_setup]
    labels = list(base)
    for shared in {b for b in base if base.count(b) > 1}:
        members = [i for i, b in enumerate(base) if b == shared]
        keys = [
            key
            for key in sorted(
                FIELDS, key=lambda k: (k in SETUP_KEYS, not isinstance(FIELDS[k].default, bool))
            )
            if all(_constant(per_setup[i], key) is not None for i in members)
            and len({_constant(per_setup[i], key) for i in members}) > 1
        ]
        chosen: list[str] = []
        for key in keys:
            chosen.append(key)
            texts = {" ".join(f"{k}={_constant(per_setup[i], k)}" for k in chosen) for i in members}
            if len(texts) == len(members):
                break
        else:
            chosen = []
        for i in members:
            detail = " ".join(f"{k}={_constant(per_setup[i], k)}" for k in chosen)
            labels[i] = f"{shared} {detail or wheres[i]}"
    return labels


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: its id and normalized spec."""

    run_id: str
    spec: dict[str, Any]
    #: ``model/dataset`` (names only), for display; with what tells it apart when several
    #: setups share them (:func:`setup_labels`).
    setup: str
    #: The other keys the suite sweeps, with this run's values (``update_period=100``).
    detail: str = ""

    @property
    def label(self) -> str:
        """A short human label: ``magnitude/gradient mlp/digits d=0.1 seed=0``, then the
        values of the other swept keys, so that every run of the suite reads differently."""
        base = describe_spec(self.spec)
        return f"{base} {self.detail}" if self.detail else base


@dataclass
class Suite:
    """A validated suite and its run matrix."""

    name: str
    path: Path
    #: The suite file's text (copied next to the results, for the record).
    text: str
    description: str
    #: Default number of parallel workers (``jobs`` key), or None.
    jobs: int | None
    #: ``{"name": ..., "params": {...}}`` of the executor to use.
    executor: dict[str, Any]
    cells: list[Cell]
    #: Non-fatal remarks (e.g. an ``exclude`` entry that matches no run).
    warnings: list[str] = field(default_factory=list)
    #: ``data_root`` key (resolved against the suite file's folder), or None.
    data_root: str | None = None
    #: ``download`` key.
    download: bool = False
    #: ``timeout`` key: seconds a run may take, or None for no limit.
    timeout: float | None = None
    #: The training engine (``engine`` key): a registered engine, ``single`` by default.
    engine: str = "single"
    #: Runs per batched group (``group`` key); 0 chooses automatically.
    group: int = 0
    #: Epochs between in-run checkpoints (``checkpoint_every`` key): 0 never; None: the
    #: executor's default (every epoch on clusters; locally, every 5 minutes of training).
    checkpoint_every: int | None = None

    def default_output(self) -> Path:
        """``results/<name>`` (relative to the working directory)."""
        return Path("results") / self.name


@dataclass
class _Exclude:
    """One ``exclude`` entry: run-spec key -> accepted values (any of), and its match count."""

    where: str
    conditions: list[tuple[str, list[Any]]]
    matched: int = 0


def load_suite(path: str | Path, registry: Registry, *, max_runs: int | None = None) -> Suite:
    """Read, validate and expand a suite file.

    :param max_runs: raise :class:`TooManyRuns` instead of expanding a grid larger than this.
    :raises SuiteError: on any problem, naming the file and the key.
    """
    file = Path(path)
    text = read_suite_text(file)
    data = parse_suite_text(text, str(file))
    return build_suite(data, registry, path=file, text=text, max_runs=max_runs)


def build_suite(
    data: Mapping[str, Any],
    registry: Registry,
    *,
    path: Path,
    text: str = "",
    max_runs: int | None = None,
) -> Suite:
    """Validate the parsed suite ``data`` and expand it (see :func:`load_suite`)."""
    return _SuiteBuilder(data, registry, path, max_runs).build(text)


class TooManyRuns(SuiteError):
    """The suite's grid has more runs than the caller asked to expand.

    Raised after every value is validated, before the (per-run) expansion, so that a preview
    of a huge grid summarises it in a moment instead of building millions of runs.
    """

    def __init__(self, path: Path, name: str, runs: int, setups: list[str]) -> None:
        super().__init__(f"{path}: suite {name!r} has up to {runs:,} runs")
        self.name = name
        self.runs = runs
        self.setups = setups


@dataclass
class _Axes:
    """One setup's validated axes: run-spec key -> values, before the product."""

    axes: dict[str, list[Any]]
    baselines: list[str]
    probe_base: dict[str, Any]

    def size(self) -> int:
        """Runs of the product (an upper bound: baselines repeat fewer, excludes remove)."""
        return math.prod(len(v) for v in self.axes.values()) * (len(self.baselines) + 1)

    def summary(self) -> str:
        """``mlp/digits: 1,000,000 runs = densities 100 x seeds 100 x ...``."""
        setup = "/".join(",".join(value_text(v) for v in self.axes[k]) for k in SETUP_KEYS)
        factors = [f"{key} {len(values)}" for key, values in self.axes.items() if len(values) > 1]
        if self.baselines:
            factors.append(f"methods {len(self.baselines) + 1}")
        return f"{setup}: up to {self.size():,} runs" + (
            f" = {' x '.join(factors)}" if factors else ""
        )


class _SuiteBuilder:
    def __init__(
        self, data: Mapping[str, Any], registry: Registry, path: Path, max_runs: int | None = None
    ) -> None:
        self.data = data
        self.registry = registry
        self.path = path
        self.max_runs = max_runs

    # --- errors --------------------------------------------------------------------------

    def fail(self, where: str, message: str) -> SuiteError:
        prefix = f"{self.path}: {where}" if where else f"{self.path}"
        return SuiteError(f"{prefix}: {message}")

    def check_keys(self, table: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
        for key in table:
            if key in allowed:
                continue
            hint = _ALIASES.get(key)
            hint_text = f" (did you mean {hint!r}?)" if hint in allowed else ""
            hint_text = hint_text or did_you_mean(key, allowed)
            if where and key in META_KEYS:
                raise self.fail(f"{where}.{key}", "allowed only at the top level of the suite")
            raise self.fail(
                f"{where}.{key}" if where else key,
                f"unknown key{hint_text}; valid keys: {', '.join(sorted(allowed))}",
            )

    # --- top level -----------------------------------------------------------------------

    def plural(self, table: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``table`` with the run options' names of grid keys (:data:`RUN_OPTION_NAMES`)
        turned into the grid keys, and grid key -> the name the file used."""
        result, spelled = dict(table), {}
        for name, grid in RUN_OPTION_NAMES.items():
            if name not in table:
                continue
            if grid in table:
                at = f"{where}.{name}" if where else name
                raise self.fail(at, f"give either {name!r} or {grid!r}, not both")
            result[grid] = result.pop(name)
            spelled[grid] = name
        return result, spelled

    def build(self, text: str) -> Suite:
        data, top_spelled = self.plural(self.data, "")
        self.check_keys(data, _TOP_ALLOWED, "")
        name = data.get("name", self.path.stem)
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
            shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "..."
            raise self.fail(
                "name",
                "expected a directory-safe name (letters, digits, '.', '_', '-'; at most "
                f"{MAX_NAME} characters), got {shown!r}",
            )
        description = data.get("description", "")
        if not isinstance(description, str):
            raise self.fail("description", f"expected a string, got {description!r}")
        jobs = data.get("jobs")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise self.fail("jobs", f"expected an integer >= 1, got {jobs!r}")
        executor = self.executor(data.get("executor", "local"))
        data_root = data.get("data_root")
        if data_root is not None:
            if not isinstance(data_root, str) or not data_root.strip():
                raise self.fail("data_root", f"expected a directory path, got {data_root!r}")
            root = Path(data_root).expanduser()
            data_root = str(root if root.is_absolute() else self.path.parent / root)
        download = data.get("download", False)
        if not isinstance(download, bool):
            raise self.fail("download", f"expected true or false, got {download!r}")
        timeout = data.get("timeout")
        if timeout is not None and not _positive_seconds(timeout):
            raise self.fail("timeout", f"expected a number of seconds > 0, got {timeout!r}")
        engine = self.engine(data.get("engine", "single"))
        checkpoint_every = data.get("checkpoint_every")
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 0
        ):
            msg = f"expected a number of epochs >= 0 (0: never), got {checkpoint_every!r}"
            raise self.fail("checkpoint_every", msg)
        group = data.get("group", 0)
        if isinstance(group, bool) or not isinstance(group, int) or group < 0:
            raise self.fail("group", f"expected an integer >= 0 (0: automatic), got {group!r}")

        top = {k: v for k, v in data.items() if k in _SETUP_ALLOWED}
        top_excludes = [("exclude", i, e) for i, e in enumerate(_as_list(top.get("exclude", [])))]
        raw_setups = data.get("setups")
        setups: list[tuple[dict[str, Any], dict[str, str], str]] = []
        if raw_setups is None:
            locations = {k: top_spelled.get(k, k) for k in top}
            setups.append(({**top, "exclude": top_excludes}, locations, ""))
        elif not isinstance(raw_setups, list) or not raw_setups:
            raise self.fail("setups", "expected a non-empty array of tables ([[setups]])")
        else:
            for index, table in enumerate(raw_setups):
                where = f"setups[{index}]"
                if not isinstance(table, Mapping):
                    raise self.fail(where, f"expected a table, got {table!r}")
                table, spelled = self.plural(table, where)
                self.check_keys(table, _SETUP_ALLOWED, where)
                merged = {**top, **table}
                locations = {
                    k: (f"{where}.{spelled.get(k, k)}" if k in table else top_spelled.get(k, k))
                    for k in merged
                }
                # Excludes accumulate: the top level's apply to every setup.
                own = _as_list(table.get("exclude", []))
                merged["exclude"] = [
                    *top_excludes,
                    *((f"{where}.exclude", i, e) for i, e in enumerate(own)),
                ]
                setups.append((merged, locations, where))

        prepared = [
            self.setup_axes(merged, locations, where) for merged, locations, where in setups
        ]
        bound = sum(p.size() for p in prepared)
        if self.max_runs is not None and bound > self.max_runs:
            raise TooManyRuns(self.path, name, bound, [p.summary() for p in prepared])
        cells: dict[str, tuple[int, Cell]] = {}
        excludes: dict[str, _Exclude] = {}
        expanded = [
            self.expand_setup(setup, merged, locations, excludes)
            for (merged, locations, _), setup in zip(setups, prepared, strict=True)
        ]
        labels = setup_labels(
            [[cell for _, cell in part] for part in expanded], [where for *_, where in setups]
        )
        for part, label in zip(expanded, labels, strict=True):
            for rank, cell in part:
                cells.setdefault(cell.run_id, (rank, dataclasses.replace(cell, setup=label)))
        ordered = sorted(cells.values(), key=lambda item: item[0])  # stable: seed rank first
        warnings = [
            f"{self.path}: {exclude.where}: matches no run of the suite"
            for exclude in excludes.values()
            if exclude.matched == 0
        ]
        if not ordered:
            raise self.fail("exclude", "every run of the suite is excluded; nothing to run")
        # Within a setup (its label names it), the keys whose values tell its runs apart.
        setups_of: dict[str, list[Cell]] = {}
        for _, cell in ordered:
            setups_of.setdefault(cell.setup, []).append(cell)
        swept = {setup: varying_keys(c.spec for c in group) for setup, group in setups_of.items()}
        return Suite(
            name=name,
            path=self.path,
            text=text,
            description=description,
            jobs=jobs,
            executor=executor,
            cells=[
                dataclasses.replace(cell, detail=detail_text(cell.spec, swept[cell.setup]))
                for _, cell in ordered
            ],
            warnings=warnings,
            data_root=data_root,
            download=download,
            timeout=float(timeout) if timeout is not None else None,
            engine=engine,
            group=group,
            checkpoint_every=checkpoint_every,
        )

    def executor(self, ref: Any) -> dict[str, Any]:
        try:
            return resolve_component(ref, "executor", self.registry, key="executor").to_json()
        except SpecError as exc:
            raise self.fail(exc.key or "executor", exc.detail) from None

    def engine(self, name: Any) -> str:
        if not isinstance(name, str):
            raise self.fail("engine", f"expected an engine name, got {name!r}")
        try:
            return lookup("engine", name, self.registry, key="engine").name
        except SpecError as exc:
            raise self.fail("engine", exc.detail) from None

    # --- one setup -----------------------------------------------------------------------

    def setup_axes(self, merged: dict[str, Any], locations: dict[str, str], where: str) -> _Axes:
        """Validate one setup's values (each once, not per run) and return its axes."""
        for key in SETUP_KEYS:
            if merged.get(key) is None:
                table = self.registry.table(key)
                raise self.fail(
                    f"{where}.{key}" if where else key,
                    f"required (at the top level or in every [[setups]] table); "
                    f"registered {key}s: {choices_text(table)}",
                )
        fidelity = merged.get("fidelity", "default")
        if fidelity not in FIDELITIES:
            raise self.fail(
                locations.get("fidelity", "fidelity"),
                f"expected one of {choices_text(FIDELITIES)}, got {fidelity!r}"
                f"{did_you_mean(str(fidelity), FIDELITIES)}",
            )
        baselines = self.baselines(merged.get("baselines", []), locations.get("baselines", ""))

        # Axis values: run-spec key -> list of raw values, each checked with the engine.
        axes: dict[str, list[Any]] = {}
        for key in SETUP_KEYS:
            axes[key] = self.values(key, key, merged[key], locations[key])
        probe_base = {"model": axes["model"][0], "dataset": axes["dataset"][0]}
        for pair in itertools.product(axes["model"], axes["dataset"]):
            self.probe({"model": pair[0], "dataset": pair[1]}, locations)
        for suite_key, spec_key in GRID_KEYS.items():
            if suite_key in merged:
                axes[spec_key] = self.values(
                    suite_key, spec_key, merged[suite_key], locations[suite_key], probe_base
                )
        for key in HYPER_KEYS:
            if key in merged:
                axes[key] = self.values(key, key, merged[key], locations[key], probe_base)
        if fidelity == "paper":
            for key, value in PAPER_FIDELITY.items():
                axes.setdefault(key, [value])
            axes["growth"] = [
                paper_growth(g) for g in axes.get("growth", [FIELDS["growth"].default])
            ]
            axes["criterion"] = [
                paper_criterion(c) for c in axes.get("criterion", [FIELDS["criterion"].default])
            ]

        return _Axes(axes=axes, baselines=baselines, probe_base=probe_base)

    def expand_setup(
        self,
        setup: _Axes,
        merged: dict[str, Any],
        locations: dict[str, str],
        excludes: dict[str, _Exclude],
    ) -> list[tuple[int, Cell]]:
        """Every run of one setup: the product of its axes, normalized, less the excludes."""
        axes, baselines, probe_base = setup.axes, setup.baselines, setup.probe_base
        setup_excludes = [
            self.exclude(f"{loc}[{i}]", entry, probe_base, excludes)
            for loc, i, entry in merged.get("exclude", [])
        ]
        seeds = axes.get("seed", [FIELDS["seed"].default])
        keys = list(axes)
        cells: list[tuple[int, Cell]] = []
        for method in (*[b for b in BASELINES if b in baselines], "dst"):
            seen: set[str] = set()
            for combo in itertools.product(*(axes[k] for k in keys)):
                raw = dict(zip(keys, combo, strict=True))
                raw["method"] = method
                spec = self.normalize(raw, locations)
                run_id = spec_hash(spec)
                if run_id in seen:
                    continue  # e.g. a static run repeated across criteria
                seen.add(run_id)
                hit = [e for e in setup_excludes if _matches(e, spec)]
                for exclude in hit:
                    exclude.matched += 1
                if hit:
                    continue
                label = f"{spec['model']['name']}/{spec['dataset']['name']}"
                rank = _seed_rank(seeds, spec["seed"])
                cells.append((rank, Cell(run_id=run_id, spec=spec, setup=label)))
        return cells

    def baselines(self, value: Any, where: str) -> list[str]:
        items = _as_list(value)
        for item in items:
            if item not in BASELINES:
                raise self.fail(
                    where or "baselines",
                    f"expected a list of {choices_text(BASELINES)}, got {item!r}"
                    f"{did_you_mean(str(item), BASELINES)}",
                )
        return list(dict.fromkeys(items))

    # --- values --------------------------------------------------------------------------

    def values(
        self,
        suite_key: str,
        spec_key: str,
        value: Any,
        where: str,
        probe_base: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """The values a key sweeps over, each validated (components expanded over sweeps)."""
        items = self.choices(spec_key, value, where)
        kind = _component_kind(spec_key)
        out: list[Any] = []
        for index, item in enumerate(items):
            loc = f"{where}[{index}]" if _is_sweep_value(spec_key, value) else where
            expanded = self.component_sweep(kind, item, loc) if kind else [item]
            for one in expanded:
                if probe_base is not None:
                    self.probe({**probe_base, spec_key: one}, {spec_key: loc})
                out.append(one)
        return _unique(out)

    def choices(self, spec_key: str, value: Any, where: str) -> list[Any]:
        if not _is_sweep_value(spec_key, value):
            return [value]
        if not value:
            raise self.fail(where, "expected a value or a non-empty list of values, got []")
        return list(value)

    def component_sweep(self, kind: str, ref: Any, where: str) -> list[dict[str, Any]]:
        """``{name = "mest", lam = [0.1, 1.0]}`` -> one reference per parameter value."""
        try:
            name, params = parse_component(ref, where)
            info = lookup(kind, name, self.registry, key=where)
        except SpecError as exc:
            raise self.fail(where, exc.detail) from None
        names = list(params)
        options: list[list[Any]] = []
        for param in names:
            value = params[param]
            default = info.params.get(param, _MISSING)
            if _is_param_sweep(value, default):
                if not value:
                    raise self.fail(where, f"parameter {param!r}: empty list of values")
                options.append(list(value))
            else:
                options.append([value])
        return [
            {"name": name, "params": dict(zip(names, combo, strict=True))}
            for combo in itertools.product(*options)
        ]

    def probe(self, raw: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
        """Normalize ``raw`` with the engine; an error names the suite key it came from."""
        try:
            return normalize_spec(raw, self.registry)
        except SpecError as exc:
            if exc.key is not None and exc.key in locations:
                raise self.fail(locations[exc.key], exc.detail) from None
            raise self.fail("", str(exc)) from None
        except DstbenchError as exc:  # not about one key
            raise self.fail("", str(exc)) from None

    def normalize(self, raw: Mapping[str, Any], locations: Mapping[str, str]) -> dict[str, Any]:
        spec_locations = {GRID_KEYS.get(k, k): v for k, v in locations.items()}
        return self.probe(raw, spec_locations)

    # --- exclude -------------------------------------------------------------------------

    def exclude(
        self,
        where: str,
        entry: Any,
        probe_base: Mapping[str, Any],
        registry_of_excludes: dict[str, _Exclude],
    ) -> _Exclude:
        if where in registry_of_excludes:
            return registry_of_excludes[where]  # a top-level entry shared by every setup
        if not isinstance(entry, Mapping) or not entry:
            raise self.fail(
                where,
                "expected a table of run keys and values, e.g. "
                f'{{criterion = "snip", density = 0.05}}, got {entry!r}',
            )
        allowed = sorted({*FIELDS, *GRID_KEYS})
        conditions: list[tuple[str, list[Any]]] = []
        for key, value in entry.items():
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                raise self.fail(
                    f"{where}.{key}", f"unknown key{hint}; valid keys: {', '.join(allowed)}"
                )
            spec_key = GRID_KEYS.get(str(key), str(key))
            loc = f"{where}.{key}"
            kind = _component_kind(spec_key)
            accepted: list[Any] = []
            for item in self.choices(spec_key, value, loc):
                if kind:
                    try:
                        ref = resolve_component(item, kind, self.registry, key=loc, only_given=True)
                    except SpecError as exc:
                        raise self.fail(loc, exc.detail) from None
                    accepted.append(ref.to_json())
                else:
                    probe = {**probe_base, spec_key: item}
                    accepted.append(self.probe(probe, {spec_key: loc})[spec_key])
            conditions.append((spec_key, accepted))
        exclude = _Exclude(where=where, conditions=conditions)
        registry_of_excludes[where] = exclude
        return exclude


# --- utilities ---------------------------------------------------------------------------


def _positive_seconds(value: Any) -> bool:
    """A finite number of seconds > 0 (booleans are not numbers here)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _component_kind(spec_key: str) -> str | None:
    kind = FIELDS[spec_key].type
    return kind.split(":", 1)[1] if kind.startswith("component:") else None


def _is_sweep_value(spec_key: str, value: Any) -> bool:
    """A list sweeps, except for list-valued keys, where a list of lists sweeps."""
    if not isinstance(value, list):
        return False
    if FIELDS[spec_key].type.startswith(_LIST_FIELD_TYPES):
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def _is_param_sweep(value: Any, default: Any) -> bool:
    """A component parameter given as a list sweeps, unless the parameter itself is a list
    (then a list of lists sweeps) or its type is unknown (a ``None`` default)."""
    if not isinstance(value, list) or default is _MISSING or default is None:
        return False
    if isinstance(default, (list, tuple)):
        return bool(value) and all(isinstance(v, list) for v in value)
    return True


def _seed_rank(seeds: list[Any], seed: int) -> int:
    # Seeds run outermost: after the first seed's pass every cell has one result.
    return seeds.index(seed) if seed in seeds else 0


def _matches(exclude: _Exclude, spec: Mapping[str, Any]) -> bool:
    return all(
        any(_value_matches(spec.get(key), want) for want in accepted)
        for key, accepted in exclude.conditions
    )


def _value_matches(have: Any, want: Any) -> bool:
    if have is None:
        return False
    if isinstance(want, dict) and "name" in want and isinstance(have, Mapping):
        params = have.get("params", {})
        return have.get("name") == want["name"] and all(
            _value_matches(params.get(k), v) for k, v in want["params"].items()
        )
    if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
        return math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-12)
    return bool(have == want)
