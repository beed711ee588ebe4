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
    layer plus a top-n, not a random permutation of every candidate.

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
    available = int(flat_candidates.sum())
    if n < 0 or n > available:
        msg = f"cannot choose {n} positions among {available} candidates"
        raise CriterionError(msg)
    if n == 0:
        return torch.zeros_like(candidates, dtype=torch.bool)
    if n == available:
        return candidates.clone()
    flat = scores.reshape(-1)
    if bool((torch.isnan(flat) & flat_candidates).any()):
        msg = f"{what} contain NaN at candidate positions"
        raise CriterionError(msg)
    # Non-candidates get the worst possible score, so the top-n can run on the whole tensor.
    worst = float("-inf") if largest else float("inf")
    masked = flat.masked_fill(~flat_candidates, worst)
    threshold = torch.topk(masked, n, largest=largest, sorted=False).values
    threshold = threshold.min() if largest else threshold.max()
    chosen = (masked > threshold) if largest else (masked < threshold)
    missing = n - int(chosen.sum())
    tied = ((masked == threshold) & flat_candidates).nonzero().squeeze(1)
    if missing == tied.numel():
        chosen[tied] = True
    else:
        # float64 keys: collisions among even millions of tied positions are negligible.
        gen_device = generator.device if generator is not None else torch.device("cpu")
        keys = torch.rand(tied.numel(), generator=generator, dtype=torch.float64, device=gen_device)
        picked = torch.topk(keys, missing, largest=False, sorted=False).indices.to(tied.device)
        chosen[tied[picked]] = True
    return chosen.view_as(candidates)
