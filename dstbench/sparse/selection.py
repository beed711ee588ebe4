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

    :param scores: tensor of the candidates' shape.
    :param candidates: bool tensor; only these positions can be chosen.
    :param n: how many to choose, ``0 <= n <= candidates.sum()``.
    :param largest: choose the highest scores (growth) or the lowest (pruning).
    :param generator: breaks ties uniformly at random. The candidates are visited in a random
        order before the top-n, so whichever rule ``topk`` uses among equal values, the chosen
        subset of a tied group is uniform. ``None`` uses the global generator.
    :param what: names the scores in error messages.
    :returns: bool tensor of ``candidates``' shape with exactly ``n`` positions set.
    """
    flat_candidates = candidates.reshape(-1)
    index = flat_candidates.nonzero().squeeze(1)
    available = index.numel()
    if n < 0 or n > available:
        msg = f"cannot choose {n} positions among {available} candidates"
        raise CriterionError(msg)
    chosen = torch.zeros_like(flat_candidates, dtype=torch.bool)
    if n == 0:
        return chosen.view_as(candidates)
    if n < available:
        values = scores.reshape(-1)[index]
        if torch.isnan(values).any():
            msg = f"{what} contain NaN at candidate positions"
            raise CriterionError(msg)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(available, generator=generator, device=gen_device)
        order = order.to(index.device)
        top = torch.topk(values[order], n, largest=largest, sorted=False).indices
        index = index[order[top]]
    chosen[index] = True
    return chosen.view_as(candidates)
