"""Component kinds and what plugins register: the one table every part of dstbench reads.

:data:`KINDS` lists every kind of component (criteria, growth methods, ..., engines) with its
registration hook, its registry attribute, the positional arguments its function receives and
the options its ``register`` call accepts. The registry, the plugin loader, provenance, the
hook reference and the command-line listings are all driven by it, so a new kind is one entry
here (plus its hook spec).

Plugins never build :class:`ComponentInfo` objects themselves: they call the ``register``
callable their registration hook receives (a :class:`Register`, which they may use as the type
annotation), and the core validates the call, reads the component's parameters from its
signature and records which plugin did it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from dstbench.errors import ParameterError, PluginError, choices_text, did_you_mean


@dataclass(frozen=True)
class ComponentKind:
    """One kind of component."""

    #: Singular name (``"criterion"``): ``ComponentInfo.kind`` and spec error messages.
    name: str
    #: Plural (``"criteria"``): the registry attribute and the ``dstbench plugins`` heading.
    plural: str
    #: Positional arguments the kind's function receives before its own keyword parameters.
    positionals: tuple[str, ...]
    #: Options its ``register`` call accepts besides ``description`` and ``params``.
    options: tuple[str, ...] = ()
    #: Run-spec keys that name a component of this kind (what provenance reports).
    spec_keys: tuple[str, ...] = ()

    @property
    def hook(self) -> str:
        """The registration hook: ``dstbench_register_<plural>``."""
        return f"dstbench_register_{self.plural}"


#: Every component kind, in the order listings show them.
KINDS: tuple[ComponentKind, ...] = (
    ComponentKind(
        "criterion",
        "criteria",
        ("ctx",),
        ("needs_grad", "needs_momentum", "selects", "paper_order", "exact", "elementwise"),
        ("criterion", "compare_criteria"),
    ),
    ComponentKind(
        "growth",
        "growth",
        ("ctx",),
        ("needs_grad", "needs_momentum", "selects", "exact", "elementwise"),
        ("growth",),
    ),
    ComponentKind("schedule", "schedules", ("step", "total_steps", "initial"), (), ("schedule",)),
    ComponentKind("distribution", "distributions", ("shapes", "density"), (), ("distribution",)),
    ComponentKind("model", "models", ("input_shape", "num_classes"), ("check",), ("model",)),
    ComponentKind("dataset", "datasets", ("ctx",), ("defaults",), ("dataset",)),
    ComponentKind("engine", "engines", (), ()),
    ComponentKind("executor", "executors", (), ()),
    ComponentKind("analysis", "analyses", ("results", "stem"), ("positional",)),
)

#: :data:`KINDS` by singular name.
KIND_BY_NAME: Mapping[str, ComponentKind] = MappingProxyType({k.name: k for k in KINDS})
#: Registry attribute for every kind (singular -> plural).
KIND_PLURALS: Mapping[str, str] = MappingProxyType({k.name: k.plural for k in KINDS})

_NAME_RE = re.compile(r"[a-z][a-z0-9_\-]*")


@dataclass(frozen=True, kw_only=True)
class ComponentInfo:
    """One registered component. Subclasses add kind-specific metadata."""

    kind: str
    name: str
    fn: Callable[..., Any] = field(repr=False)
    description: str = ""
    #: Parameter name -> default value (defaults also define the accepted type).
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Name of the plugin that registered it (its entry-point name).
    plugin: str = ""
    #: Distribution (pip package) and version the plugin comes from, when known.
    distribution: str | None = None
    version: str | None = None

    def metadata(self) -> dict[str, Any]:
        """A JSON-ready description of this component (used by ``dstbench plugins --json``)."""
        meta: dict[str, Any] = {
            "description": self.description,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
        }
        meta.update(self._extra_metadata())
        return meta

    def _extra_metadata(self) -> dict[str, Any]:
        return {}

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Fill defaults into ``given`` and check every name and type.

        :raises ParameterError: on an unknown parameter or a value of the wrong type.
        """
        given = dict(given or {})
        resolved = dict(self.params)
        for key, value in given.items():
            if key not in self.params:
                valid = choices_text(self.params) if self.params else "none"
                msg = (
                    f"{self.kind} {self.name!r} has no parameter {key!r}"
                    f"{did_you_mean(key, self.params)}; valid parameters: {valid}"
                )
                raise ParameterError(msg)
            resolved[key] = coerce_param(self, key, value)
        return resolved


@dataclass(frozen=True, kw_only=True)
class CriterionInfo(ComponentInfo):
    """A pruning criterion."""

    needs_grad: bool = False
    needs_momentum: bool = False
    #: True for the selection form (``fn(ctx, n)`` returns the positions to prune).
    selects: bool = False
    #: Where the paper's code scores with this criterion: ``"before"`` means after the
    #: optimizer step (the code's ``opt_order="before"``), ``"after"`` means before it.
    paper_order: Literal["before", "after"] = "after"
    #: False when the selection form may prune a count other than the requested ``n`` (the
    #: paper code's SET); growth then regrows the number actually pruned.
    exact: bool = True
    #: True when a position's score (selection form: whether it is chosen) depends only on
    #: that position's weight, gradient and momentum and on the other candidates' scores, not
    #: on the layer's shape or on inactive positions: the ``sparse`` engine may then call the
    #: criterion on the active values alone, without a dense tensor of the layer's size.
    elementwise: bool = False

    def _extra_metadata(self) -> dict[str, Any]:
        return {
            "needs_grad": self.needs_grad,
            "needs_momentum": self.needs_momentum,
            "selects": self.selects,
            "paper_order": self.paper_order,
            "exact": self.exact,
            "elementwise": self.elementwise,
        }


@dataclass(frozen=True, kw_only=True)
class GrowthInfo(ComponentInfo):
    """A growth method."""

    needs_grad: bool = False
    needs_momentum: bool = False
    selects: bool = False
    #: False when the method grows the requested count only in expectation.
    exact: bool = True
    #: True when a position's score depends only on that position's own weight, gradient and
    #: momentum. A score-form method that is elementwise and needs neither the gradient nor
    #: the momentum scores every inactive position alike (their weights are all zero), so it
    #: grows uniformly at random: the ``sparse`` engine then draws the positions without a
    #: dense tensor of the layer's size.
    elementwise: bool = False

    def _extra_metadata(self) -> dict[str, Any]:
        return {
            "needs_grad": self.needs_grad,
            "needs_momentum": self.needs_momentum,
            "selects": self.selects,
            "exact": self.exact,
            "elementwise": self.elementwise,
        }


@dataclass(frozen=True, kw_only=True)
class ModelInfo(ComponentInfo):
    """A registered model factory."""

    #: ``check(**params)`` raises :class:`~dstbench.errors.DstbenchError` for parameters no
    #: dataset could make work (a zero width, an absurd size); called when a spec is built,
    #: before anything runs. None: the factory checks at build time only.
    check: Callable[..., object] | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(ComponentInfo):
    """A dataset, with the run-spec defaults that suit it."""

    defaults: Mapping[str, Any] = field(default_factory=dict)

    def _extra_metadata(self) -> dict[str, Any]:
        return {"defaults": dict(self.defaults)}


@dataclass(frozen=True, kw_only=True)
class AnalysisInfo(ComponentInfo):
    """An analysis of run records: ``fn(results, *, stem, **params) -> Report``."""

    #: Parameters given on the command line before the directories (``sweep KEY DIR``).
    positional: tuple[str, ...] = ()

    def _extra_metadata(self) -> dict[str, Any]:
        return {"positional": list(self.positional)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def coerce_param(info: ComponentInfo, key: str, value: Any) -> Any:
    """Check ``value`` against the type of ``info.params[key]``'s default and convert it.

    Integers are accepted for float parameters, lists for tuple parameters; a ``None``
    default accepts anything.
    """
    default = info.params[key]
    if default is None:
        return value
    expected = type(default)
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected in (tuple, list):
        ok = isinstance(value, (list, tuple))
        value = expected(value) if ok else value
    else:
        ok = isinstance(value, expected)
    if not ok:
        msg = (
            f"{info.kind} {info.name!r} parameter {key!r} expects {expected.__name__} "
            f"(default {default!r}), got {type(value).__name__} {value!r}"
        )
        raise ParameterError(msg)
    return value


def signature_params(fn: Callable[..., Any], positionals: tuple[str, ...]) -> dict[str, Any]:
    """Read a component's parameters (name -> default) from its signature.

    The first ``len(positionals)`` parameters are the ones dstbench passes positionally; all
    others must have defaults. ``**kwargs`` is ignored.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature take no parameters
        return {}
    params: dict[str, Any] = {}
    plain = [
        p
        for p in sig.parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    for p in plain[len(positionals) :]:
        if p.default is inspect.Parameter.empty:
            msg = f"parameter {p.name!r} of {getattr(fn, '__qualname__', fn)!r} needs a default"
            raise PluginError(msg)
        params[p.name] = p.default
    return params


class Register:
    """The ``register`` callable handed to one plugin's registration hook for one kind."""

    def __init__(
        self,
        kind: str,
        plugin: str,
        distribution: str | None,
        version: str | None,
        sink: Callable[[ComponentInfo], None],
    ) -> None:
        self.kind = kind
        self.plugin = plugin
        self.distribution = distribution
        self.version = version
        self._sink = sink

    def __call__(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """Register ``fn`` under ``name``; see the kind's hook for the accepted options."""
        where = f"plugin {self.plugin!r} registering {self.kind} {name!r}"
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            msg = f"{where}: names are lower-case letters, digits, '_' or '-', got {name!r}"
            raise PluginError(msg)
        if not callable(fn):  # plugins are untyped callers: check at run time
            msg = f"{where}: expected a callable, got {type(fn).__name__}"  # type: ignore[unreachable]
            raise PluginError(msg)
        kind = KIND_BY_NAME[self.kind]
        allowed = set(kind.options)
        unknown = sorted(set(options) - allowed)
        if unknown:
            valid = choices_text(allowed | {"description", "params"})
            msg = f"{where}: unknown option(s) {', '.join(unknown)}; valid options: {valid}"
            raise PluginError(msg)
        if options.get("exact") is False and not options.get("selects"):
            # The harness turns scores into exactly n positions; only a component that
            # chooses the positions itself (the selection form) can miss the count.
            msg = f"{where}: exact=False needs the selection form (selects=True)"
            raise PluginError(msg)
        positionals = kind.positionals
        if options.get("selects"):
            positionals = (*positionals, "n")
        if self.kind == "criterion" and "paper_order" not in options:
            options["paper_order"] = "after" if options.get("needs_grad") else "before"
        if self.kind == "criterion" and options["paper_order"] not in ("before", "after"):
            msg = f"{where}: paper_order must be 'before' or 'after'"
            raise PluginError(msg)
        declared = dict(params) if params is not None else signature_params(fn, positionals)
        cls = _info_class(self.kind)
        if "defaults" in options:
            options["defaults"] = MappingProxyType(dict(options["defaults"] or {}))
        if "positional" in options:
            options["positional"] = tuple(options["positional"])
            missing = [p for p in options["positional"] if p not in declared]
            if missing:
                msg = f"{where}: positional {missing} are not parameters of the function"
                raise PluginError(msg)
        info = cls(
            kind=self.kind,
            name=name,
            fn=fn,
            description=description or _first_doc_line(fn),
            params=MappingProxyType(declared),
            plugin=self.plugin,
            distribution=self.distribution,
            version=self.version,
            **options,
        )
        self._sink(info)


def _first_doc_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _info_class(kind: str) -> type[ComponentInfo]:
    """The info class a kind's components are recorded with."""
    classes: dict[str, type[ComponentInfo]] = {
        "criterion": CriterionInfo,
        "growth": GrowthInfo,
        "dataset": DatasetInfo,
        "model": ModelInfo,
        "analysis": AnalysisInfo,
    }
    return classes.get(kind, ComponentInfo)
