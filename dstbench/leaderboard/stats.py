"""Statistics over seeds: confidence intervals, paired differences, rank intervals.

Built on scipy and numpy. Every interval is two-sided at ``level`` (95% by default):

* :func:`t_interval`: Student's t interval of the mean, ``mean ± t(n−1) · s / √n``;
* :func:`bootstrap_interval`: the percentile bootstrap of the mean (``scipy.stats.bootstrap``);
* :func:`paired_difference`: the t interval of the per-seed differences (runs with the same
  seed share the initialisation and the data order, so they are compared pairwise);
* :func:`welch_difference`: Welch's unequal-variance interval of a difference of means;
* :func:`rank_interval`: average rank per row with a bootstrap interval over seeds and columns.

Bootstrap resampling is seeded from the data themselves (:func:`data_seed`), so the same
values always give the same interval, and a report built from them is byte-identical.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import struct
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType


@functools.cache
def _scipy_stats() -> ModuleType:
    """``scipy.stats``, imported on first use: it takes about a second, and most commands
    that load this module (``dstbench plugins``, a suite's workers) never compute a statistic."""
    from scipy import stats

    return stats


#: Confidence level of every interval unless told otherwise.
LEVEL = 0.95
#: Bootstrap resamples (percentile intervals are stable to ~0.1 point at this size).
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval (``low``/``high`` None when n < 2)."""

    estimate: float
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        """Half the interval's width (what ``mean ± h`` shows)."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0 (the difference is significant)."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0

    def contains(self, value: float) -> bool:
        """True when ``value`` lies in the interval (always, for an interval of one value)."""
        if self.low is None or self.high is None:
            return True
        return self.low <= value <= self.high


def data_seed(*groups: Sequence[float]) -> int:
    """A 63-bit seed from the values (exact float bits), for reproducible resampling."""
    digest = hashlib.sha256()
    for values in groups:
        digest.update(struct.pack(f"<{len(values)}d", *values))
        digest.update(b"|")
    return int.from_bytes(digest.digest()[:8], "little") >> 1


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` with its Student-t confidence interval."""
    data = np.asarray(values, dtype=float)
    n = data.size
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = float(data.mean())
    if n < 2:
        return Interval(mean, None, None, n)
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    half = float(_scipy_stats().t.ppf(0.5 + level / 2, n - 1)) * sem
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_interval(
    values: Sequence[float], level: float = LEVEL, resamples: int = RESAMPLES
) -> Interval:
    """The mean of ``values`` with a percentile-bootstrap interval (seeded from the values)."""
    data = np.asarray(values, dtype=float)
    n = data.size
    if n == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    mean = float(data.mean())
    if n < 2 or float(data.min()) == float(data.max()):
        # Every resample has the same mean: the interval is the point itself (or undefined).
        return Interval(mean, mean if n > 1 else None, mean if n > 1 else None, n)
    result = _scipy_stats().bootstrap(
        (data,),
        np.mean,
        confidence_level=level,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(data_seed(values)),
    )
    ci = result.confidence_interval
    return Interval(mean, float(ci.low), float(ci.high), n)


def mean_interval(values: Sequence[float], method: str = "t", level: float = LEVEL) -> Interval:
    """The mean with a ``"t"`` or ``"bootstrap"`` interval."""
    if method == "bootstrap":
        return bootstrap_interval(values, level)
    return t_interval(values, level)


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL
) -> Interval | None:
    """Mean of ``a[s] − b[s]`` over the seeds ``s`` both have, with its t interval.

    :returns: None when no seed is shared.
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    return t_interval([a[s] - b[s] for s in shared], level)


def welch_difference(
    a: Sequence[float], b: Sequence[float], level: float = LEVEL
) -> Interval | None:
    """``mean(a) − mean(b)`` with Welch's interval (unequal variances, unpaired samples).

    With fewer than two values on a side there is no interval (estimate only); None when a
    side is empty.
    """
    if not a or not b:
        return None
    estimate = float(np.mean(a)) - float(np.mean(b))
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        return Interval(estimate, None, None, n)
    # Welch–Satterthwaite, written out: scipy's ttest_ind warns when one side is constant.
    va, vb = float(np.var(a, ddof=1)) / len(a), float(np.var(b, ddof=1)) / len(b)
    if va == 0 and vb == 0:
        return Interval(estimate, estimate, estimate, n)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(_scipy_stats().t.ppf(0.5 + level / 2, df)) * math.sqrt(va + vb)
    return Interval(estimate, estimate - half, estimate + half, n)


def difference(
    a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL
) -> tuple[Interval | None, bool]:
    """``a − b``: paired over shared seeds when at least two are shared, else Welch.

    :returns: the interval and whether it is paired.
    """
    shared = set(a) & set(b)
    if len(shared) >= 2:
        return paired_difference(a, b, level), True
    return welch_difference(list(a.values()), list(b.values()), level), False


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1 = highest, ties sharing their mean rank, NaN unranked."""
    above = values[..., None, :] > values[..., :, None]  # [i, j]: value j beats value i
    equal = values[..., None, :] == values[..., :, None]
    rank = 1.0 + above.sum(-1) + (equal.sum(-1) - 1) / 2.0
    return np.where(np.isnan(values), np.nan, rank)


def rank_interval(
    columns: Sequence[np.ndarray],
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    decimals: int | None = None,
) -> list[Interval | None]:
    """Average rank of each row over columns, with a bootstrap interval.

    :param columns: one ``rows × seeds`` array per column (NaN where a row has no value for a
        seed; a row with no value at all in a column is not ranked there). Seeds are aligned
        across rows (paired), so a resample draws the same seeds for every row of a column.
    :param decimals: round the cell means to this many decimals before ranking (so that the
        ranks agree with the displayed values).
    :returns: per row, the average over columns of the rank of its mean (1 = best), with a
        percentile interval from resampling seeds within each column and the columns
        themselves; None for a row that has no value anywhere.
    """
    if not columns:
        return []
    n_rows = columns[0].shape[0]

    def means(data: np.ndarray, picks: np.ndarray | None) -> np.ndarray:
        chosen = data if picks is None else data[:, picks]  # rows × (B ×) seeds
        with _quiet():
            out = np.nanmean(chosen, axis=-1)
        out = np.moveaxis(out, 0, -1)  # (B ×) rows
        return np.asarray(np.round(out, decimals)) if decimals is not None else out

    point = np.stack([ranks(means(c, None)) for c in columns])  # columns × rows
    with _quiet():
        average = np.nanmean(point, axis=0)
    seed = data_seed(*(np.nan_to_num(c, nan=-1.0).ravel().tolist() for c in columns))
    rng = np.random.default_rng(seed)
    replicate = np.empty((resamples, len(columns), n_rows))
    for index, data in enumerate(columns):
        picks = rng.integers(0, data.shape[1], size=(resamples, data.shape[1]))
        replicate[:, index, :] = ranks(means(data, picks))
    chosen = rng.integers(0, len(columns), size=(resamples, len(columns)))
    sampled = replicate[np.arange(resamples)[:, None], chosen, :]  # B × columns × rows
    with _quiet():
        boot = np.nanmean(sampled, axis=1)  # B × rows
    alpha = (1 - level) / 2
    out: list[Interval | None] = []
    for row in range(n_rows):
        if math.isnan(average[row]):
            out.append(None)
            continue
        draws = boot[:, row]
        draws = draws[~np.isnan(draws)]
        counted = int(np.sum(~np.isnan(point[:, row])))
        if draws.size == 0:
            out.append(Interval(float(average[row]), None, None, counted))
            continue
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        out.append(Interval(float(average[row]), float(low), float(high), counted))
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings (NaN is the intended answer)."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
