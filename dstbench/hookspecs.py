"""Every hook dstbench calls, in one place.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`, named after the
hooks below. Plugins are found through the ``dstbench`` entry-point group; the built-in
criteria, growth methods, schedules, distributions, models and datasets are plugins too.

A plugin implements only the hooks it needs, and may accept only some of a hook's arguments
(pluggy passes arguments by name), so new arguments can be added later without breaking it.
"""

from __future__ import annotations

from typing import Any

import pluggy

from dstbench.contracts import EpochStats, Register, RunContext, TopologyUpdate

PROJECT_NAME = "dstbench"

#: Marks a function as a hook specification. Only dstbench itself uses it.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

#: Marks a function in a plugin as the implementation of a dstbench hook:
#: ``from dstbench import hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------------
# Registration hooks: called once per process, when the registry is first built.
# Each receives a ``register`` callable; the core validates and records what is registered,
# together with the plugin that registered it.
# ---------------------------------------------------------------------------------------------


@hookspec
def dstbench_register_criteria(register: Register) -> None:
    """Register pruning criteria.

    Called once, when the registry is built. Call
    ``register(name, fn, *, needs_grad=False, needs_momentum=False, description="",
    selects=False, exact=True, paper_order=None, elementwise=False, params=None)`` once per
    criterion.

    *Score form* (the default): ``fn(ctx, **params)`` returns a tensor of ``ctx.weight``'s
    shape. **Higher score = keep**: the harness prunes the ``n`` lowest-scoring *active*
    weights of the layer, breaking ties at random with the run's seeded generator. Inactive
    positions are never pruned, whatever their score.

    *Selection form* (``selects=True``), for criteria that are not a single score (SET):
    ``fn(ctx, n, **params)`` returns a bool tensor with exactly ``n`` active positions set:
    the weights to prune. The harness checks the count and that every position is active.
    A selection that misses ``n`` by design (the paper code's SET) registers with
    ``exact=False``: any number of active positions may then be returned, and growth regrows
    the number actually pruned, so layer densities are unchanged.

    ``ctx`` is a :class:`dstbench.CriterionContext` with ``weight``, ``grad`` (dense gradient
    of the current batch, or ``None`` unless ``needs_grad``), ``mask`` (bool), ``layer``
    (name), ``step``, ``momentum`` (optimizer buffer or ``None`` unless ``needs_momentum``)
    and ``generator``. ``fn`` must not modify any of them.

    Keyword parameters with defaults in ``fn``'s signature (after ``ctx``/``n``) become the
    criterion's parameters, settable from suites as ``"name[param=value]"``; ``params`` gives
    them explicitly instead. ``paper_order`` (``"before"``/``"after"`` the optimizer step)
    is used only with ``update_order = "paper"``; it defaults to ``"after"`` for criteria that
    need the gradient and ``"before"`` otherwise, as in the paper's code.

    ``elementwise=True`` promises that a weight's score depends only on its own weight,
    gradient and momentum (selection form: that the choice depends only on the active
    weights' values, not on their positions or the layer's shape). The ``sparse`` engine then
    calls ``fn`` on the active weights alone, as 1-D tensors with an all-true mask, so that a
    layer far too large to hold densely can still be pruned; other criteria see dense tensors.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_growth(register: Register) -> None:
    """Register growth (regrowth) methods.

    Called once, when the registry is built. Call
    ``register(name, fn, *, needs_grad=False, needs_momentum=False, description="",
    selects=False, exact=True, elementwise=False, params=None)``.

    *Score form*: ``fn(ctx, **params)`` returns a tensor of the weight's shape. **Higher score
    = grow**: the harness activates the ``n`` highest-scoring *inactive* positions (ties at
    random). *Selection form* (``selects=True``): ``fn(ctx, n, **params)`` returns a bool
    tensor of inactive positions to activate; exactly ``n`` unless registered with
    ``exact=False`` (e.g. the paper code's Bernoulli random growth), in which case the engine
    lets layer densities drift and records it.

    ``ctx`` is a :class:`dstbench.GrowthContext` (``weight``, ``grad``, ``mask`` after
    pruning, ``layer``, ``step``, ``momentum``, ``generator``).

    ``elementwise=True`` promises that a position's score depends only on its own weight,
    gradient and momentum. Such a method that needs neither gradient nor momentum scores every
    inactive position alike, so it grows uniformly at random, and the ``sparse`` engine draws
    its positions without building a dense tensor of the layer's size.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_schedules(register: Register) -> None:
    """Register prune-fraction schedules.

    Called once, when the registry is built. Call
    ``register(name, fn, *, description="", params=None)`` where
    ``fn(step, total_steps, initial, **params) -> float`` gives the prune fraction ζ at
    iteration ``step`` (1-based) of a run of ``total_steps`` iterations, ``initial`` being the
    run's ``prune_fraction`` (ζ₀). A value of 0 means "no topology update at this step".

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_distributions(register: Register) -> None:
    """Register layer-wise density distributions.

    Called once, when the registry is built. Call
    ``register(name, fn, *, description="", params=None)`` where
    ``fn(shapes, density, **params) -> dict[str, float]`` maps every layer name of ``shapes``
    (a mapping of layer name to weight shape) to a density in ``[0, 1]``, such that the
    total number of active weights is ``density`` times the total number of weights.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_models(register: Register) -> None:
    """Register model factories.

    Called once, when the registry is built. Call
    ``register(name, factory, *, description="", params=None, check=None)`` where
    ``factory(input_shape, num_classes, **params) -> torch.nn.Module``. ``check(**params)``,
    if given, raises :class:`dstbench.DstbenchError` for parameters that no dataset could
    make work (a zero width, an absurd size): it runs when a spec is validated, so such a
    spec is refused before anything runs. ``input_shape`` is one
    sample's shape (e.g. ``(3, 32, 32)``). A factory that cannot handle a shape raises
    :class:`dstbench.DstbenchError` with a clear message. For a binary task (``num_classes ==
    2``) a model may return a single logit per sample; the engine then trains with binary
    cross-entropy on logits.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_datasets(register: Register) -> None:
    """Register datasets.

    Called once, when the registry is built. Call
    ``register(name, factory, *, description="", defaults=None, params=None)`` where
    ``factory(ctx, **params) -> dstbench.DatasetParts``. ``ctx`` is a
    :class:`dstbench.DatasetContext` (``root``: the resolved data directory, ``download``:
    whether downloading is allowed). ``defaults`` are run-spec defaults suited to the dataset
    (e.g. ``{"batch_size": 32, "update_period": 50}``); explicit values always win.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_engines(register: Register) -> None:
    """Register training engines (how a worker trains the runs it is given).

    Called once, when the registry is built. Call
    ``register(name, factory, *, description="", params=None)`` where ``factory(**params)``
    returns a :class:`dstbench.contracts.Engine`: ``groups(jobs, size)`` splits jobs into the
    groups it trains together, and ``run(requests, options, plugins)`` trains one group and
    yields each run's :class:`dstbench.RunRecord` in order. An engine changes how runs are
    computed, never what they are: a run's id and record do not depend on it (only
    ``provenance.engine`` says which one trained it). Built in: ``single`` (one run at a time)
    and ``batched`` (compatible runs stacked and trained together).

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_executors(register: Register) -> None:
    """Register suite executors (how a suite's runs are dispatched: locally, on a cluster).

    Called once, when the registry is built. Call
    ``register(name, factory, *, description="", params=None)``; see
    :mod:`dstbench.suite.executors` for the executor protocol.

    :param register: the registration callable described above.
    """


@hookspec
def dstbench_register_analyses(register: Register) -> None:
    """Register analyses of run records (what ``dstbench analyze NAME DIR...`` runs).

    Called once, when the registry is built. Call
    ``register(name, fn, *, description="", positional=(), params=None)`` once per analysis.
    ``fn(results, *, stem, **params)`` receives the :class:`dstbench.leaderboard.Results` of
    the directories given (merged by run id: ``entries``, each with ``run_id``, ``spec``,
    ``status`` and ``record``) and the output file's stem (figure file names start with it),
    and returns a :class:`dstbench.analysis.report.Report`: the markdown and
    ``{file name: PNG bytes}`` it links to. Keyword parameters with defaults are the analysis'
    parameters (``--param k=v``); those named in ``positional`` are given on the command line
    before the directories (``dstbench analyze sweep KEY DIR``). Raise
    :class:`dstbench.DstbenchError` with one line when the records lack what the analysis
    needs.

    :param register: the registration callable described above.
    """


# ---------------------------------------------------------------------------------------------
# Run lifecycle hooks: observers (loggers, analyses). Called in the process that trains, never
# inside the per-iteration hot path. Exceptions raised here fail the run (recorded as failed).
# ---------------------------------------------------------------------------------------------


@hookspec
def dstbench_run_start(run: RunContext) -> None:
    """Called once per run after the model, masks and data are set up, before the first step.

    :param run: the run's context: ``spec`` (the :class:`dstbench.RunSpec`, which also reads
        as its JSON mapping), ``run_id``, ``model``,
        ``masker`` (``None`` for dense runs), ``device`` and ``artifact_dir`` (a directory the
        plugin may write into, or ``None``).
    """


@hookspec
def dstbench_topology_update(run: RunContext, update: TopologyUpdate) -> None:
    """Called after every topology update (prune + grow), before training continues.

    :param run: the run's context (see :func:`dstbench_run_start`).
    :param update: a :class:`dstbench.TopologyUpdate`: ``step``, ``prune_fraction``, and per
        layer (:class:`dstbench.LayerUpdate`) the ``pruned`` and ``grown`` bool masks, their
        counts ``n_pruned``/``n_grown``/``n_regrown``, ``active`` after the update and
        ``n_requested`` (differs from ``n_pruned`` only for criteria registered with
        ``exact=False``). The tensors are the engine's own: read them, do not modify them.
        The ``sparse`` engine builds a layer's masks when they are first read (and
        ``run.masker``'s layers build ``mask`` and ``weight`` likewise): reading the counts
        costs nothing, reading the masks of a layer too large to hold densely exhausts memory.
    """


@hookspec
def dstbench_epoch_end(run: RunContext, epoch: EpochStats) -> None:
    """Called at the end of every epoch, after validation.

    :param run: the run's context (see :func:`dstbench_run_start`).
    :param epoch: a :class:`dstbench.EpochStats` (``epoch``, ``train_loss``,
        ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``lr``, ``prune_fraction``,
        ``density``, ``seconds``).
    """


@hookspec
def dstbench_run_end(run: RunContext, record: dict[str, Any]) -> None:
    """Called once per run with its result record, whatever the run's status.

    :param run: the run's context (see :func:`dstbench_run_start`).
    :param record: the JSON-ready result record (``status``, ``metrics``, ``density``, ...).
        Observers may read it; changes are not saved.
    """
