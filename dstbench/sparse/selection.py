"""Exact top-n selection among candidate positions, with seeded random tie-breaking."""

from __future__ import annotations

import torch

from dstbench.errors import CriterionError


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
    ``generator``. Only the tied group needs random numbers, so the cost is a few passes over the
    layer plus one top-n, not a random permutation of every candidate.

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
    # Few candidates (pruning at low density): gather them, so the top-n runs on them alone.
    # Many (growth at low density): give the others the worst score and keep the whole layer.
    gathered = 2 * available <= flat.numel()
    if gathered:
        index = flat_candidates.nonzero().squeeze(1)
        values = flat[index]
    else:
        values = flat.masked_fill(~flat_candidates, float("-inf") if largest else float("inf"))
    if bool(torch.isnan(values).any()):  # fills are ±inf, so a NaN is a candidate's
        msg = f"{what} contain NaN at candidate positions"
        raise CriterionError(msg)
    best = torch.topk(values, n, largest=largest, sorted=False).values
    threshold = best.min() if largest else best.max()
    chosen = (values > threshold) if largest else (values < threshold)
    tied = values == threshold
    if not gathered:
        tied &= flat_candidates  # a ±inf threshold would also match the fills
    tied_index = tied.nonzero().squeeze(1)
    missing = n - int(torch.count_nonzero(chosen))
    if missing == tied_index.numel():
        chosen[tied_index] = True
    else:
        # float64 keys: collisions among even millions of tied positions are negligible.
        gen_device = generator.device if generator is not None else torch.device("cpu")
        keys = torch.rand(
            tied_index.numel(), generator=generator, dtype=torch.float64, device=gen_device
        )
        picked = torch.topk(keys, missing, largest=False, sorted=False).indices
        chosen[tied_index[picked.to(tied_index.device)]] = True
    if not gathered:
        return chosen.view_as(candidates)
    result = torch.zeros_like(flat_candidates)
    result[index[chosen]] = True
    return result.view_as(candidates)
