"""Conformance checks of pruning criteria and growth methods, on plain layers.

Each component is called the way the engine calls it (the gradient and momentum only when
declared with ``needs_grad``/``needs_momentum``) on a Linear and a Conv2d layer, then through
the engine's own selection path (:func:`dstbench.sparse.ops.prune_positions` /
:func:`~dstbench.sparse.ops.grow_positions`) for several counts ``n``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import torch

from dstbench.conformance._collect import Collector, error_text
from dstbench.conformance.layers import LAYER_SHAPES, make_layer
from dstbench.conformance.report import Check
from dstbench.contracts.layers import LayerContext
from dstbench.registry import ComponentInfo, CriterionInfo, GrowthInfo
from dstbench.sparse.ops import grow_positions, prune_positions

#: Seeds of the generator handed to the component in the determinism checks.
_SEED = 1234
#: Draws used to check that an inexact growth method grows about n positions on average.
_INEXACT_DRAWS = 20

SelectInfo = CriterionInfo | GrowthInfo


def metadata_checks(info: ComponentInfo) -> list[Check]:
    """Checks every component must pass: a description, JSON-compatible parameter defaults."""
    c = Collector()
    name = "has a description"
    if info.description.strip():
        c.ok(name)
    else:
        c.fail(
            name,
            "description is empty",
            "give the function a docstring (its first line is used) or pass description= "
            "to register()",
        )
    name = "parameters have JSON-compatible defaults"
    for key, default in info.params.items():
        try:
            json.dumps(default, allow_nan=False)
        except (TypeError, ValueError):
            c.fail(
                name,
                f"parameter {key!r} defaults to {default!r} ({type(default).__name__})",
                "use a bool, int, float, str, list or None default: suites and result records "
                "store parameters as JSON",
            )
        else:
            c.ok(name)
    if not info.params:
        c.ok(name, "no parameters")
    return c.checks()


class _Layer:
    """Rebuilds the same layer on demand, so a component that corrupts its inputs cannot
    spoil the next check.
    """

    def __init__(self, kind: str, index: int, info: SelectInfo, device: str) -> None:
        self.shape = LAYER_SHAPES[kind]
        self.label = f"{kind} weight {self.shape}"
        self.index = index
        self.info = info
        self.device = device

    def ctx(self, *, full: bool = False, seed: int | None = None) -> LayerContext:
        """The context as the engine builds it (``full``: gradient and momentum included)."""
        ctx = make_layer(
            self.shape,
            seed=self.index,
            device=self.device,
            grad=full or self.info.needs_grad,
            momentum=full or self.info.needs_momentum,
            layer=self.label.split()[0] + ".weight",
        )
        if seed is not None:
            ctx = replace(ctx, generator=torch.Generator().manual_seed(seed))
        return ctx


def _call(info: SelectInfo, ctx: LayerContext, n: int, params: Mapping[str, Any]) -> Any:
    with torch.no_grad():
        if info.selects:
            return info.fn(ctx, n, **params)
        return info.fn(ctx, **params)


def _needs_hint(info: SelectInfo, layer: _Layer, n: int, params: Mapping[str, Any]) -> str | None:
    """If the call fails without the gradient/momentum but works with them, say which."""
    if info.needs_grad and info.needs_momentum:
        return None
    try:
        _call(info, layer.ctx(full=True), n, params)
    except Exception:
        return None
    missing = []
    try:
        _call(info, replace(layer.ctx(full=True), momentum=layer.ctx().momentum), n, params)
    except Exception:
        missing.append("needs_momentum=True")
    try:
        _call(info, replace(layer.ctx(full=True), grad=layer.ctx().grad), n, params)
    except Exception:
        missing.append("needs_grad=True")
    reads = " and ".join(missing) or "needs_grad=True"
    return (
        f"it reads ctx.grad or ctx.momentum, which the engine passes only when declared: "
        f"register it with {reads}"
    )


_INPUTS = ("weight", "mask", "grad", "momentum")


def _snapshot(ctx: LayerContext) -> dict[str, torch.Tensor | None]:
    return {k: None if getattr(ctx, k) is None else getattr(ctx, k).clone() for k in _INPUTS}


def _modified(ctx: LayerContext, before: Mapping[str, torch.Tensor | None]) -> list[str]:
    changed = []
    for key in _INPUTS:
        old, new = before[key], getattr(ctx, key)
        if old is not None and not torch.equal(old, new):
            changed.append(f"ctx.{key}")
    return changed


def _check_output(
    c: Collector, info: SelectInfo, layer: _Layer, ctx: LayerContext, out: Any
) -> None:
    shape = tuple(ctx.weight.shape)
    if info.selects:
        name = "returns a bool tensor of the weight's shape"
        if (
            not isinstance(out, torch.Tensor)
            or out.dtype != torch.bool
            or tuple(out.shape) != shape
        ):
            got = (
                f"{out.dtype} tensor of shape {tuple(out.shape)}"
                if isinstance(out, torch.Tensor)
                else type(out).__name__
            )
            c.fail(
                name,
                f"{layer.label}: returned {got}, expected a bool tensor of shape {shape}",
                "the selection form returns a bool mask shaped like ctx.weight, True at the "
                "positions chosen",
            )
        else:
            c.ok(name)
        return
    name = "returns a score tensor of the weight's shape"
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        c.fail(
            name,
            f"{layer.label}: returned {got}, expected shape {shape}",
            "return one score per weight, shaped like ctx.weight (do not flatten, reduce or "
            "transpose it)",
        )
        return
    if out.dtype == torch.bool or out.is_complex():
        c.fail(
            name,
            f"{layer.label}: returned a {out.dtype} tensor",
            "return real-valued scores (a float tensor); use selects=True to return a mask",
        )
        return
    if out.device != ctx.weight.device:
        c.fail(
            name,
            f"{layer.label}: scores on {out.device}, weight on {ctx.weight.device}",
            "create tensors on ctx.weight.device (e.g. torch.zeros_like(ctx.weight))",
        )
        return
    c.ok(name)
    candidates = ctx.mask if isinstance(info, CriterionInfo) else ~ctx.mask
    where = "active weights" if isinstance(info, CriterionInfo) else "inactive positions"
    name = f"scores are finite on {where}"
    values = out[candidates]
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        kinds = sorted({str(v) for v in values[~torch.isfinite(values)].tolist()})
        c.fail(
            name,
            f"{layer.label}: {bad} of {values.numel()} scores are {'/'.join(kinds)}",
            "guard divisions and logs with an epsilon (the paper's criteria use "
            "|w| / (|g| + 1e-8) + 1): weights and gradients can be exactly zero",
        )
    else:
        c.ok(name)


def _counts(info: SelectInfo, layer: _Layer) -> list[int]:
    """The ``n`` values to select with: 1, about 30% of the active weights, and all."""
    ctx = layer.ctx()
    active = int(ctx.mask.sum())
    available = active if isinstance(info, CriterionInfo) else ctx.mask.numel() - active
    return sorted({1, min(available, math.ceil(0.3 * active)), available})


def _select(info: SelectInfo, params: Mapping[str, Any], ctx: LayerContext, n: int) -> torch.Tensor:
    if isinstance(info, CriterionInfo):
        return prune_positions(info, params, ctx, n)
    return grow_positions(info, params, ctx, n)


def _check_selection(
    c: Collector, info: SelectInfo, layer: _Layer, params: Mapping[str, Any]
) -> None:
    pruning = isinstance(info, CriterionInfo)
    verb = "prunes" if pruning else "grows"
    only = f"{verb} only {'active weights' if pruning else 'inactive positions'}"
    exact = (
        f"{verb} exactly n positions" if info.exact else f"{verb} a count of its own (exact=False)"
    )
    for n in _counts(info, layer):
        ctx = layer.ctx(seed=_SEED)
        allowed = ctx.mask if pruning else ~ctx.mask
        try:
            with torch.no_grad():
                chosen = info.fn(ctx, n, **params) if info.selects else None
        except Exception as exc:
            c.fail(
                f"{verb} for any n from 1 to all candidates",
                f"{layer.label}, n={n}: {error_text(exc)}",
                "the engine asks for any n up to the number of candidates (e.g. ζ = 1)",
            )
            continue
        if chosen is None:  # score form: the harness selects
            chosen = _select(info, params, layer.ctx(seed=_SEED), n)
        if not isinstance(chosen, torch.Tensor) or chosen.shape != allowed.shape:
            continue  # reported by the output check
        chosen = chosen.bool()
        stray = int((chosen & ~allowed).sum())
        if stray:
            target = "inactive" if pruning else "already active"
            c.fail(
                only,
                f"{layer.label}, n={n}: {stray} {target} position{'s' * (stray > 1)} selected",
                f"restrict the selection to {'ctx.mask' if pruning else '~ctx.mask'} "
                f"(e.g. chosen &= {'ctx.mask' if pruning else '~ctx.mask'})",
            )
        else:
            c.ok(only)
        count = int(chosen.sum())
        if info.exact and count != n:
            c.fail(
                exact,
                f"{layer.label}: asked for n={n}, selected {count}",
                "return exactly n positions (dstbench.sparse.selection.select picks an exact "
                "top-n with seeded tie-breaks); if the count is inexact by design, register "
                "with exact=False",
            )
        elif info.exact:
            c.ok(exact)
        else:
            c.ok(exact, f"{layer.label}: n={n} -> {count}")
    if not info.exact and not pruning:
        _check_inexact_growth_mean(c, info, layer, params)


def _check_inexact_growth_mean(
    c: Collector, info: SelectInfo, layer: _Layer, params: Mapping[str, Any]
) -> None:
    name = "grows about n positions on average (exact=False)"
    n = _counts(info, layer)[1]
    total = 0
    for seed in range(_INEXACT_DRAWS):
        ctx = layer.ctx(seed=seed)
        chosen = info.fn(ctx, n, **params)
        total += int(torch.as_tensor(chosen).bool().sum())
    mean = total / _INEXACT_DRAWS
    if 0.5 * n <= mean <= 1.5 * n:
        c.ok(name, f"{layer.label}: n={n}, mean {mean:.1f} over {_INEXACT_DRAWS} seeds")
    else:
        c.fail(
            name,
            f"{layer.label}: n={n}, but {mean:.1f} positions on average over "
            f"{_INEXACT_DRAWS} seeds",
            "an inexact growth method should still grow n positions in expectation "
            "(e.g. each inactive position with probability n / inactive)",
        )


def _run_twice(
    info: SelectInfo,
    layer: _Layer,
    params: Mapping[str, Any],
    n: int,
    global_seeds: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    results = []
    devices = [torch.device(layer.device).index or 0] if layer.device.startswith("cuda") else []
    for global_seed in global_seeds:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(global_seed)
            results.append(_select(info, params, layer.ctx(seed=_SEED), n))
    return results[0], results[1]


def _check_determinism(
    c: Collector, info: SelectInfo, layer: _Layer, params: Mapping[str, Any]
) -> None:
    n = _counts(info, layer)[1]
    name = "is deterministic for a fixed seed"
    try:
        first, second = _run_twice(info, layer, params, n, (0, 0))
    except Exception as exc:  # the selection itself is broken: reported by another check
        c.skip(name, f"{layer.label}: not checked, the selection fails ({error_text(exc)})")
        return
    if not torch.equal(first, second):
        c.fail(
            name,
            f"{layer.label}: two calls with the same inputs and seed chose different positions",
            "derive every random choice from ctx.generator and nothing else (no time, no "
            "Python random, no state kept between calls)",
        )
        return
    c.ok(name)
    name = "draws randomness only from ctx.generator"
    try:
        first, second = _run_twice(info, layer, params, n, (1, 2))
    except Exception as exc:  # fails only under another global seed: still nondeterministic
        c.fail(name, f"{layer.label}: {error_text(exc)}", "see the error")
        return
    if not torch.equal(first, second):
        c.fail(
            name,
            f"{layer.label}: the choice changed with torch's global random state",
            "pass generator=ctx.generator to every torch.rand/randn/randperm/multinomial "
            "call (the generator is on the CPU: draw there, then .to(ctx.weight.device))",
        )
    else:
        c.ok(name)


def check_selector(
    info: SelectInfo, *, params: Mapping[str, Any] | None = None, device: str = "cpu"
) -> list[Check]:
    """Every check of a criterion or growth method, with its default (or given) parameters."""
    resolved = info.resolve_params(params)
    checks = metadata_checks(info)
    c = Collector()
    runs = "runs on Linear and Conv2d weights"
    unmodified = "does not modify its inputs"
    for index, kind in enumerate(LAYER_SHAPES):
        layer = _Layer(kind, index, info, device)
        ctx = layer.ctx()
        n = _counts(info, layer)[1]
        before = _snapshot(ctx)
        try:
            out = _call(info, ctx, n, resolved)
        except Exception as exc:
            hint = _needs_hint(info, layer, n, resolved)
            c.fail(
                runs,
                f"{layer.label}: {error_text(exc)}",
                hint
                or "make fn work on any weight shape: Linear weights are 2-D (out, in), Conv2d "
                "weights 4-D (out, in, kh, kw); use elementwise operations on ctx tensors",
            )
            continue
        c.ok(runs)
        changed = _modified(ctx, before)
        if changed:
            c.fail(
                unmodified,
                f"{layer.label}: {', '.join(changed)} changed",
                "treat ctx tensors as read-only: use out-of-place operations "
                "(ctx.weight.abs(), not ctx.weight.abs_()) or clone first",
            )
        else:
            c.ok(unmodified)
        failures = c.n_failures
        _check_output(c, info, layer, ctx, out)
        if c.n_failures > failures:  # the engine would reject this output: nothing more to see
            continue
        try:
            _check_selection(c, info, layer, resolved)
        except Exception as exc:
            c.fail(
                "selects through the engine",
                f"{layer.label}: {error_text(exc)}",
                "see the error; dstbench.prune/dstbench.grow reproduce the engine's call",
            )
        _check_determinism(c, info, layer, resolved)
    return checks + c.checks()


#: Kind -> checks run on the component's function alone (no training).
SELECTORS: dict[str, Callable[..., list[Check]]] = {
    "criterion": check_selector,
    "growth": check_selector,
}
