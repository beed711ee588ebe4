"""A run record: what one run produced, typed and frozen, with its JSON form.

The engine assembles a record in one place (:mod:`dstbench.engine.record`); executors add
where it ran (:meth:`RunRecord.with_execution`); the result store writes :meth:`to_json`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from dstbench.contracts.spec import RunSpec

#: Version of the record format. Schema 2 records carry a ``digest`` of their content;
#: schema 1 records (written before digests) have none and are read as they are.
SCHEMA = 2
#: The first schema whose records must carry a digest.
DIGEST_SCHEMA = 2
#: The key of a record's content digest.
DIGEST = "digest"

#: Final statuses. ``ok``: trained, metrics are finite; ``failed``: an error (``error``);
#: ``diverged``: a non-finite loss; ``invalid``: an invariant broke or the network was cut.
STATUSES = ("ok", "failed", "diverged", "invalid")

#: The record's own keys, in the order its JSON form lists them.
_CORE = ("schema", "run_id", "status", "spec", "metrics", "density", "topology", "timings")


@dataclass(frozen=True)
class RunRecord:
    """One run's result."""

    run_id: str
    status: str
    spec: RunSpec
    #: ``test_accuracy``, ``best_val_test_accuracy``, ``curve``, losses, MACs...
    metrics: Mapping[str, Any]
    #: ``target``, ``achieved`` and per layer ``numel``/``target``/``density``.
    density: Mapping[str, Any]
    #: ``updates``, ``pruned``, ``grown`` and ``per_update``.
    topology: Mapping[str, Any]
    timings: Mapping[str, Any] = field(default_factory=dict)
    #: Why a run is ``diverged`` or ``invalid``.
    reason: str | None = None
    #: ``type``, ``message``, ``user_error``, ``traceback`` of a ``failed`` run.
    error: Mapping[str, Any] | None = None
    #: Versions, device, engine and the plugin behind every component.
    provenance: Mapping[str, Any] | None = None
    #: Executor, worker and host (added by the executor's worker).
    execution: Mapping[str, Any] | None = None
    #: Optional blocks: ``analysis``, ``mask_movement``, ``health``, ``fidelity``,
    #: ``data_notes``, ``checkpoint``...
    extra: Mapping[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        for name in ("metrics", "density", "topology", "timings", "extra"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def to_json(self) -> dict[str, Any]:
        """The JSON form (a fresh dict), as the result store writes it."""
        data: dict[str, Any] = {
            "schema": self.schema,
            "run_id": self.run_id,
            "status": self.status,
            "spec": self.spec.to_json(),
            "metrics": dict(self.metrics),
            "density": dict(self.density),
            "topology": dict(self.topology),
            "timings": dict(self.timings),
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.error is not None:
            data["error"] = dict(self.error)
        if self.provenance is not None:
            data["provenance"] = dict(self.provenance)
        data.update(self.extra)
        if self.execution is not None:
            data["execution"] = dict(self.execution)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """Inverse of :meth:`to_json`.

        :raises KeyError, TypeError: when ``data`` is not a record of this schema.
        """
        known = {*_CORE, "reason", "error", "provenance", "execution", DIGEST}
        return cls(
            run_id=str(data["run_id"]),
            status=str(data["status"]),
            spec=RunSpec.from_json(data["spec"]),
            metrics=data["metrics"],
            density=data["density"],
            topology=data["topology"],
            timings=data.get("timings") or {},
            reason=data.get("reason"),
            error=data.get("error"),
            provenance=data.get("provenance"),
            execution=data.get("execution"),
            extra={k: v for k, v in data.items() if k not in known},
            schema=int(data.get("schema", SCHEMA)),
        )

    def with_execution(self, execution: Mapping[str, Any]) -> RunRecord:
        """This record with the executor's ``execution`` block."""
        return replace(self, execution=dict(execution))


def _strict(obj: Any) -> Any:
    """``obj`` as strict JSON holds it: non-finite floats as None, tuples as lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def content_digest(data: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of a record's JSON content (every key but ``digest``).

    The content is serialized canonically (sorted keys, no spaces, strict JSON), so the digest
    of a record read back from its file is the digest it was written with, and any change of a
    value, a key or a type (``0.1`` to ``"0.1"``) changes it.
    """
    body = {k: v for k, v in _strict(dict(data)).items() if k != DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` in its strict JSON form with its :func:`content_digest` (what is written)."""
    body = {k: v for k, v in _strict(dict(data)).items() if k != DIGEST}
    body[DIGEST] = content_digest(body)
    return body


def digest_problem(data: Mapping[str, Any]) -> str | None:
    """Why ``data`` is not the record it was written as (edited after it was written), or None.

    A record of schema 2 or later must carry its digest; older records carry none and are
    accepted as they are (they were written before digests existed).
    """
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool):
        return f"schema is {schema!r}, not a number"
    written = data.get(DIGEST)
    if written is None:
        if schema >= DIGEST_SCHEMA:
            return f"a schema {schema} record without its digest"
        return None
    if written != content_digest(data):
        return "its content does not match its digest (edited after it was written)"
    return None
