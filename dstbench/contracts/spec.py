"""A run spec: one training run, fully described, typed and frozen.

A :class:`RunSpec` is built and validated in one place (:func:`dstbench.engine.spec.build_spec`)
and then travels unchanged: to executors and workers as JSON (:meth:`RunSpec.to_json`), into
the record, to observers. Its components are :class:`ComponentRef` objects that carry the
resolved registry entry (``info``), so nothing looks a name up again.

The run's identity is a hash of the spec's canonical JSON (:attr:`RunSpec.run_id`): the same
run has the same id in any suite. Options that do not change the science (device, data root,
engine, checkpoints) are execution options, not part of the spec.

A spec also reads as the mapping of its JSON form (``spec["criterion"]["name"]``), so code
that handles stored records (plain JSON) and fresh specs alike needs no second path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dstbench.contracts.components import ComponentInfo


def spec_hash(spec: Mapping[str, Any], length: int = 16) -> str:
    """The run id: a hash of the canonical JSON of a spec's JSON form."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


@dataclass(frozen=True, eq=False)
class ComponentRef:
    """A component chosen by a spec: its name, every parameter, and its registry entry."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: The registry entry the name resolved to (None for a spec read back from JSON without
    #: a registry); not part of the identity.
    info: ComponentInfo | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def _key(self) -> tuple[str, str]:
        # Equal when their JSON forms are: a tuple parameter read back from JSON is a list.
        return self.name, json.dumps(_plain(self.params), sort_keys=True, default=str)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComponentRef):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_json(self) -> dict[str, Any]:
        """``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": _plain(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentRef:
        """Inverse of :meth:`to_json`."""
        return cls(str(data["name"]), dict(data.get("params") or {}))

    @property
    def label(self) -> str:
        """``name`` or ``name[k=v,...]`` with every parameter."""
        return format_component(self.to_json())


def _plain(value: Any) -> Any:
    """A copy with plain containers (mapping proxies become dicts; parameter tuples stay
    tuples, which JSON writes as lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


#: Keys added after run ids were first published: left out of the JSON form while at their
#: default, so that the ids of every run that does not use them stay the same.
OMITTED_AT_DEFAULT: Mapping[str, Any] = MappingProxyType({"jaccard_at_init": False})


@dataclass(frozen=True)
class RunSpec(Mapping[str, Any]):
    """Every choice of one run. Keys irrelevant to the run's method are None.

    The field docs live in :data:`dstbench.engine.spec.FIELDS` (``dstbench run --help``).
    """

    model: ComponentRef
    dataset: ComponentRef
    method: str
    criterion: ComponentRef | None
    growth: ComponentRef | None
    density: float
    distribution: ComponentRef | None
    schedule: ComponentRef | None
    prune_fraction: float | None
    update_period: int | None
    seed: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    lr_milestones: tuple[float, ...]
    lr_gamma: float
    val_fraction: float
    validation: str
    dense_first: bool | None
    dense_last: bool | None
    mask_init: str | None
    update_order: str | None
    reset_momentum: bool | None
    compare_criteria: tuple[ComponentRef, ...] | None
    #: One pruning step on untrained weights instead of training (never for dense/static).
    jaccard_at_init: bool = False
    _json: Mapping[str, Any] = field(init=False, repr=False, compare=False)
    _run_id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        # Unused (None) and off (False) are one value: the JSON form omits both.
        object.__setattr__(self, "jaccard_at_init", bool(self.jaccard_at_init))
        if self.compare_criteria is not None:
            object.__setattr__(self, "compare_criteria", tuple(self.compare_criteria))
        data: dict[str, Any] = {}
        for f in fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            if f.name in OMITTED_AT_DEFAULT and value in (None, OMITTED_AT_DEFAULT[f.name]):
                continue
            if isinstance(value, ComponentRef):
                value = value.to_json()
            elif isinstance(value, tuple):
                value = [v.to_json() if isinstance(v, ComponentRef) else v for v in value]
            data[f.name] = value
        object.__setattr__(self, "_json", MappingProxyType(data))
        object.__setattr__(self, "_run_id", spec_hash(data))

    # --- identity and JSON -----------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id: the hash of :meth:`to_json`."""
        return self._run_id

    def __hash__(self) -> int:
        return hash(self.run_id)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (a fresh dict): what records and job files hold."""
        return dict(_plain(self._json))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        """A spec from its JSON form (components without registry entries).

        :raises KeyError: when a key is missing; :raises TypeError: on an unknown key.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if not f.init:
                continue
            if f.name not in data:
                if f.name in OMITTED_AT_DEFAULT:
                    continue
                raise KeyError(f.name)
            value = data[f.name]
            if isinstance(value, Mapping) and "name" in value:
                value = ComponentRef.from_json(value)
            elif f.name == "compare_criteria" and value is not None:
                value = tuple(ComponentRef.from_json(v) for v in value)
            values[f.name] = value
        unknown = set(data) - set(values) - set(OMITTED_AT_DEFAULT)
        if unknown:
            raise TypeError(f"unknown spec keys: {', '.join(sorted(unknown))}")
        return cls(**values)

    # --- the mapping view ------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self._json[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._json)

    def __len__(self) -> int:
        return len(self._json)

    # --- convenience -------------------------------------------------------------------------

    @property
    def components(self) -> dict[str, ComponentRef]:
        """Spec key -> component, for every component the run uses
        (``compare_criteria[i]`` for the compared criteria)."""
        found: dict[str, ComponentRef] = {}
        for key in ("model", "dataset", "criterion", "growth", "distribution", "schedule"):
            ref = getattr(self, key)
            if ref is not None:
                found[key] = ref
        for i, ref in enumerate(self.compare_criteria or ()):
            found[f"compare_criteria[{i}]"] = ref
        return found

    @property
    def label(self) -> str:
        """A short human label: ``magnitude/gradient mlp/digits d=0.1 seed=0``."""
        return describe_spec(self._json)


def format_component(component: Mapping[str, Any] | None) -> str:
    """``name`` or ``name[k=v,...]`` with every parameter (``-`` for no component)."""
    if component is None:
        return "-"
    params = component.get("params", {})
    if not params:
        return str(component["name"])
    inner = ",".join(
        f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in sorted(params.items())
    )
    return f"{component['name']}[{inner}]"


def describe_spec(spec: Mapping[str, Any]) -> str:
    """A short human label of a spec's JSON form: ``magnitude/gradient mlp/digits d=0.1
    seed=0``."""
    setup = f"{spec['model']['name']}/{spec['dataset']['name']}"
    if spec["method"] == "dense":
        return f"dense {setup} seed={spec['seed']}"
    if spec["method"] == "static":
        return f"static {setup} d={spec['density']:g} seed={spec['seed']}"
    method = f"{format_component(spec['criterion'])}/{format_component(spec['growth'])}"
    return f"{method} {setup} d={spec['density']:g} seed={spec['seed']}"
