"""Declarative suites: TOML files that expand into a run matrix, run in parallel, resume.

``load_suite(path, registry)`` validates a suite file and expands it; ``run_suite(suite)`` runs
what is not done yet with the suite's executor and writes the leaderboard. See
:mod:`dstbench.suite.loader` for the file format and :mod:`dstbench.suite.executors` for the
executor protocol that cluster plugins implement.
"""

from __future__ import annotations

from dstbench.suite.executors import ExecutionOptions, Executor, Job, Reporter
from dstbench.suite.loader import Cell, Suite, load_suite
from dstbench.suite.runner import SuiteOutcome, plan, run_suite
from dstbench.suite.store import RunStore

__all__ = [
    "Cell",
    "ExecutionOptions",
    "Executor",
    "Job",
    "Reporter",
    "RunStore",
    "Suite",
    "SuiteOutcome",
    "load_suite",
    "plan",
    "run_suite",
]
