"""The conformance kit: checks that a plugin's components honour dstbench's contracts.

``dstbench check-plugin NAME`` runs it from the command line; :mod:`dstbench.testing` wraps it
for pytest. Every check says what it observed and, when it fails, how to fix it:

* criteria and growth methods, on a Linear and a Conv2d layer: they run with what the engine
  passes (the gradient/momentum only when declared), return scores of the weight's shape that
  are finite on the candidates (or a bool selection), never select outside the candidates,
  select exactly ``n`` (or declare ``exact=False``), do not modify their inputs, are
  deterministic for a fixed seed and draw randomness only from ``ctx.generator``; then they
  drive a short real DST run;
* schedules return ζ in [0, 1] at every step; distributions meet the global density with
  layer densities in [0, 1];
* models build (or decline a shape with a clear error), have sparsifiable weights and train
  one step; datasets load consistent parts and train one step;
* lifecycle hooks run through a short real run without failing it;
* every component has a description and JSON-compatible parameter defaults.
"""

from __future__ import annotations

from dstbench.conformance.layers import LAYER_SHAPES, LayerCase, layer_cases, make_layer
from dstbench.conformance.plugin import check_component, check_plugin, load_for_check
from dstbench.conformance.report import Check, ComponentReport, PluginReport, format_report

__all__ = [
    "LAYER_SHAPES",
    "Check",
    "ComponentReport",
    "LayerCase",
    "PluginReport",
    "check_component",
    "check_plugin",
    "format_report",
    "layer_cases",
    "load_for_check",
    "make_layer",
]
