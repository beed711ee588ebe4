"""Exact top-n selection among candidate positions, with seeded random tie-breaking."""

from __future__ import annotations

import math

import torch

from dstbench.errors import CriterionError

#: About this many positions of a layer are sampled to bound the n-th best score (see
#: :func:`_region`): enough that the bound rarely needs a second look, few enough that sorting
#: them costs nothing next to one pass over the layer.
_SAMPLE = 16384


def select(
    scores: torch.Tensor,
    candidates: torch.Tensor,
    n: int,
    *,
    largest: bool,
    generator: torch.Generator | None,
    what: str = "scores",
) -> torch.Tensor:
    """Choose exactly ``n`` positions among ``candidates`` by score.

    Every candidate strictly better than the n-th best score is chosen; the remaining places
    go to candidates that tie with the n-th best score, drawn uniformly at random with
    ``generator``. Only the tied group needs random numbers (one float64 key per tied
    candidate, in position order, the ``missing`` smallest keys win), and none at all when every
    tied candidate is needed, so the random stream depends on the scores' ties alone.

    The n-th best score is found without sorting the layer: the candidates that can hold it are
    narrowed down to a small region first (:func:`_region`), and ``kthvalue`` runs on that. The
    cost is a handful of passes over the layer whatever ``n`` is.

    :param scores: tensor of the candidates' shape.
    :param candidates: bool tensor; only these positions can be chosen.
    :param n: how many to choose, ``0 <= n <= candidates.sum()``.
    :param largest: choose the highest scores (growth) or the lowest (pruning).
    :param generator: breaks ties (``None`` uses the global generator).
    :param what: names the scores in error messages.
    :returns: bool tensor of ``candidates``' shape with exactly ``n`` positions set.
    :raises CriterionError: for NaN scores at candidate positions or an impossible ``n``.
    """
    flat_candidates = candidates.reshape(-1)
    available = int(torch.count_nonzero(flat_candidates))
    if n < 0 or n > available:
        msg = f"cannot choose {n} positions among {available} candidates"
        raise CriterionError(msg)
    if n == 0:
        return torch.zeros_like(candidates, dtype=torch.bool)
    if n == available:
        return candidates.clone()
    flat = scores.reshape(-1)
    # A NaN anywhere makes the maximum NaN: one cheap reduction in the common case, and the
    # exact (candidates only) test only when there is a NaN somewhere.
    if (
        flat.is_floating_point()
        and bool(torch.isnan(flat.amax()))
        and bool((torch.isnan(flat) & flat_candidates).any())
    ):
        msg = f"{what} contain NaN at candidate positions"
        raise CriterionError(msg)
    region = _region(flat, flat_candidates, available, n, largest=largest)
    # The region holds every candidate at least as good as its n-th best, so the n-th best
    # candidate is the region's n-th best, and the counts below are those of all candidates.
    rank = region.numel() - n + 1 if largest else n
    threshold = torch.kthvalue(region, rank).values
    better = int(torch.count_nonzero(region > threshold if largest else region < threshold))
    n_tied = int(torch.count_nonzero(region == threshold))
    missing = n - better
    if missing == n_tied:  # every tied candidate is chosen: no random number is drawn
        at_least = flat >= threshold if largest else flat <= threshold
        return (at_least & flat_candidates).view_as(candidates)
    chosen = (flat > threshold if largest else flat < threshold) & flat_candidates
    tied_index = ((flat == threshold) & flat_candidates).nonzero().squeeze(1)
    # float64 keys: collisions among even millions of tied positions are negligible.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    keys = torch.rand(
        tied_index.numel(), generator=generator, dtype=torch.float64, device=gen_device
    )
    picked = torch.topk(keys, missing, largest=False, sorted=False).indices
    chosen[tied_index[picked.to(tied_index.device)]] = True
    return chosen.view_as(candidates)


def _region(
    flat: torch.Tensor, flat_candidates: torch.Tensor, available: int, n: int, *, largest: bool
) -> torch.Tensor:
    """The scores of a set of candidates that contains every candidate scoring at least as
    well as the n-th best (``0 < n < available``), in no particular order.

    Usually the candidates at least as good as a bound read off a strided sample of the layer,
    a few standard deviations past the sample's estimate of the n-th best score, so that the
    region is little larger than ``n`` (growth at low density: ~n of millions of candidates;
    pruning: ~n of a few times n). All candidates when they are few, or when ``n`` is most of
    them. The bound only decides how much work follows, never the result: when the region
    turns out to miss the n-th best (fewer than n candidates reach the bound), every candidate
    is taken instead.
    """
    numel = flat.numel()
    if available <= 4 * _SAMPLE:
        return _gather(flat, flat_candidates)
    stride = _stride(numel)
    sample = flat[::stride].masked_select(flat_candidates[::stride])
    size = sample.numel()
    expected = n * size / available  # rank of the n-th best within the sample
    rank = math.ceil(expected + 4 * math.sqrt(expected) + 16)
    if 2 * rank > size:  # the region would hold most candidates: not worth a pass to bound it
        return _gather(flat, flat_candidates)
    bound = torch.kthvalue(sample, size - rank if largest else rank + 1).values
    inside = (flat >= bound if largest else flat <= bound) & flat_candidates
    if int(torch.count_nonzero(inside)) < n:
        return _gather(flat, flat_candidates)
    return _gather(flat, inside)


def _gather(flat: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """``flat[where]``. On a CPU, ``masked_select`` first copies the whole mask to int64 to
    count it; ``nonzero`` and a gather are cheaper."""
    return flat.index_select(0, where.nonzero().squeeze(1))


def _stride(numel: int) -> int:
    """A sampling stride of about ``numel / _SAMPLE`` that shares no factor with ``numel``.

    Every dimension of a weight divides its size, so such a stride visits every row, column
    and kernel position alike: a sample of a (1024, 3072) layer taken every 192 positions would
    see only 16 of its 3072 columns.
    """
    stride = max(1, numel // _SAMPLE)
    while math.gcd(stride, numel) != 1:
        stride += 1
    return stride
