"""Statistics checked against scipy/numpy computations written out here, on known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from dstbench.leaderboard import stats


def test_t_interval_matches_the_textbook_formula():
    # 1, 2, 3: mean 2, s = 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3)
    interval = stats.t_interval([1.0, 2.0, 3.0])
    assert interval.estimate == pytest.approx(2.0)
    assert interval.half_width == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    values = [0.90, 0.92, 0.95, 0.91, 0.97]
    low, high = sp.t.interval(0.95, df=4, loc=np.mean(values), scale=sp.sem(values))
    interval = stats.t_interval(values)
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))
    assert interval.n == 5


def test_a_single_value_has_no_interval():
    interval = stats.t_interval([0.5])
    assert interval.estimate == 0.5 and interval.low is None and interval.half_width is None
    assert not interval.excludes_zero() and interval.contains(123.0)


def test_paired_difference_uses_the_shared_seeds_only():
    a = {0: 0.90, 1: 0.92, 2: 0.95, 7: 0.10}
    b = {0: 0.88, 1: 0.91, 2: 0.92, 9: 0.99}
    diff = stats.paired_difference(a, b)
    # differences 0.02, 0.01, 0.03: mean 0.02, s = 0.01
    assert diff is not None and diff.n == 3
    assert diff.estimate == pytest.approx(0.02)
    assert diff.half_width == pytest.approx(4.302653 * 0.01 / math.sqrt(3), rel=1e-5)
    reference = sp.ttest_rel([0.90, 0.92, 0.95], [0.88, 0.91, 0.92]).confidence_interval()
    assert (diff.low, diff.high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert not diff.excludes_zero()  # [-0.0048, 0.0448]: three seeds are not enough here
    steady = stats.paired_difference({0: 0.90, 1: 0.92, 2: 0.95}, {0: 0.88, 1: 0.899, 2: 0.931})
    assert steady is not None and steady.excludes_zero()  # 0.02, 0.021, 0.019
    assert stats.paired_difference({0: 1.0}, {1: 1.0}) is None


def test_welch_difference_matches_welch_satterthwaite():
    a, b = [0.80, 0.82, 0.85, 0.81], [0.90, 0.91, 0.95]
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = sp.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = stats.welch_difference(b, a)
    assert diff is not None
    assert diff.estimate == pytest.approx(np.mean(b) - np.mean(a))
    assert diff.half_width == pytest.approx(half)
    reference = sp.ttest_ind(b, a, equal_var=False).confidence_interval()
    assert (diff.low, diff.high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    # one side constant: the interval comes from the other side's variance alone
    one = stats.welch_difference([0.5, 0.5, 0.5], [0.4, 0.41, 0.42])
    assert one is not None and one.half_width == pytest.approx(sp.t.ppf(0.975, 2) * 0.01 / 3**0.5)
    # both constant: the difference is exact
    exact = stats.welch_difference([0.5, 0.5], [0.4, 0.4])
    assert exact is not None and exact.low == exact.high == pytest.approx(0.1)


def test_difference_pairs_when_two_seeds_are_shared():
    interval, paired = stats.difference({0: 1.0, 1: 2.0}, {0: 0.5, 1: 1.4})
    assert paired and interval is not None and interval.estimate == pytest.approx(0.55)
    interval, paired = stats.difference({0: 1.0, 1: 2.0}, {5: 0.5, 6: 1.5})
    assert not paired and interval is not None and interval.estimate == pytest.approx(0.5)


def test_bootstrap_is_seeded_from_the_data_and_close_to_t_for_a_large_sample():
    values = list(np.random.default_rng(3).normal(0.8, 0.02, size=200))
    first, second = stats.bootstrap_interval(values), stats.bootstrap_interval(values)
    assert first == second  # byte-identical reports need identical intervals
    t = stats.t_interval(values)
    assert first.half_width == pytest.approx(t.half_width, rel=0.15)
    reference = sp.bootstrap(
        (np.asarray(values),),
        np.mean,
        n_resamples=stats.RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(stats.data_seed(values)),
    ).confidence_interval
    assert (first.low, first.high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    constant = stats.bootstrap_interval([0.5, 0.5, 0.5])
    assert constant.low == constant.high == 0.5


def test_data_seed_depends_on_every_value():
    assert stats.data_seed([0.1, 0.2]) == stats.data_seed([0.1, 0.2])
    assert stats.data_seed([0.1, 0.2]) != stats.data_seed([0.2, 0.1])
    assert stats.data_seed([0.1], [0.2]) != stats.data_seed([0.1, 0.2])


def test_ranks_share_ties_and_skip_missing():
    ranks = stats.ranks(np.array([0.9, 0.8, 0.9, np.nan]))
    assert ranks[:3].tolist() == [1.5, 3.0, 1.5] and math.isnan(ranks[3])


def test_rank_interval_of_a_row_that_always_wins_is_one():
    # two columns, rows x three seeds; row 0 beats row 1 beats row 2 on every seed
    column = np.array([[0.9, 0.91, 0.92], [0.8, 0.81, 0.82], [0.7, 0.71, 0.72]])
    intervals = stats.rank_interval([column, column.copy()])
    assert [(i.estimate, i.low, i.high) for i in intervals] == [
        (1.0, 1.0, 1.0),
        (2.0, 2.0, 2.0),
        (3.0, 3.0, 3.0),
    ]


def test_rank_interval_spreads_when_rows_trade_places():
    # column 1: row 0 wins; column 2: row 1 wins -> both average 1.5, interval [1, 2]
    first = np.array([[0.9, 0.9], [0.8, 0.8]])
    second = np.array([[0.7, 0.7], [0.8, 0.8]])
    a, b = stats.rank_interval([first, second])
    assert a.estimate == b.estimate == 1.5
    assert (a.low, a.high) == (1.0, 2.0) and (b.low, b.high) == (1.0, 2.0)
    # a row without values anywhere is not ranked
    missing = np.array([[0.9], [np.nan]])
    ranked, unranked = stats.rank_interval([missing])
    assert ranked.estimate == 1.0 and unranked is None
