"""orthobook.stats: intervals over seeds against their textbook formulas."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from orthobook.stats import (
    Interval,
    difference_interval,
    mean_interval,
    rank_pvalue,
    success_interval,
    summary_table,
)


def test_mean_interval_is_the_student_t_interval() -> None:
    x = np.array([0.3, 0.1, 0.25, 0.4, 0.2])
    half = sps.t.ppf(0.975, df=4) * x.std(ddof=1) / math.sqrt(5)
    iv = mean_interval(x)
    assert iv.estimate == pytest.approx(x.mean())
    assert (iv.low, iv.high) == pytest.approx((x.mean() - half, x.mean() + half))
    assert iv.n == 5 and iv.confidence == 0.95


def test_mean_interval_of_equal_values_has_zero_width() -> None:
    iv = mean_interval([2.0, 2.0, 2.0])
    assert (iv.low, iv.estimate, iv.high) == (2.0, 2.0, 2.0)


def test_a_wider_confidence_gives_a_wider_interval() -> None:
    x = [1.0, 2.0, 4.0, 3.0]
    narrow, wide = mean_interval(x, 0.5), mean_interval(x, 0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_difference_interval_is_welchs() -> None:
    a, b = np.array([1.0, 1.2, 0.9, 1.1]), np.array([2.0, 2.5, 1.5, 2.2, 1.8])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = sps.t.ppf(0.975, df) * math.sqrt(va + vb)
    iv = difference_interval(a, b)
    assert iv.estimate == pytest.approx(a.mean() - b.mean())
    assert (iv.low, iv.high) == pytest.approx((iv.estimate - half, iv.estimate + half))
    assert iv.n == 9


def test_a_sample_of_one_repeated_value_beside_another_warns_nothing() -> None:
    """Five seeds at exactly the same value beside five that differ (chapter 4's recall at
    chance, under other numerics): Welch's interval is the varied sample's alone, and scipy's
    precision-loss warning does not reach the chapter's output."""
    same, varied = [0.125] * 5, np.array([0.9, 1.0, 0.8, 0.95, 0.85])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iv = difference_interval(varied, same)
        spread = mean_interval(varied)
    assert (iv.low, iv.high) == pytest.approx((spread.low - 0.125, spread.high - 0.125))


def test_success_interval_is_wilsons() -> None:
    k, n, z = 3, 10, sps.norm.ppf(0.975)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    iv = success_interval(k, n)
    assert (iv.low, iv.high) == pytest.approx((centre - half, centre + half))
    assert iv.k == 3 and iv.n == 10 and iv.estimate == 0.3
    assert success_interval([True, False, True, False, False, False, True, False, False, False]) == iv
    assert f"{iv}" == f"3/10 [{iv.low:.2f}, {iv.high:.2f}]"


def test_rank_pvalue_is_the_exact_mann_whitney() -> None:
    # Separated samples of 5 and 5: the exact one-sided p is 1 / C(10, 5).
    assert rank_pvalue([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], "less") == pytest.approx(1 / math.comb(10, 5))
    assert rank_pvalue([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / math.comb(10, 5))


def test_interval_formats_each_number() -> None:
    iv = Interval(0.12345, 0.1, 0.2, 5)
    assert f"{iv:.2f}" == "0.12 [0.10, 0.20]"
    assert str(iv) == "0.123 [0.1, 0.2]"
    assert iv.excludes(0.0) and not iv.excludes(0.15)


def test_summary_table_rows() -> None:
    table = summary_table({"a": [1.0, 3.0], "bb": [2.0, 2.0, 2.0]}, spec=".1f", label="run")
    lines = table.splitlines()
    assert lines[0].split() == ["run", "mean", "95", "%", "interval", "seeds"]
    assert lines[2].split() == ["bb", "2.0", "[2.0,", "2.0]", "3"]
    assert max(len(line) for line in lines) < 60


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: mean_interval([1.0]), ValueError),
        (lambda: mean_interval([1.0, float("nan")]), ValueError),
        (lambda: mean_interval([1.0, 2.0], confidence=1.0), ValueError),
        (lambda: difference_interval([1.0, 2.0], [3.0]), ValueError),
        (lambda: success_interval(3), ValueError),
        (lambda: success_interval(6, 5), ValueError),
        (lambda: success_interval([True], 1), ValueError),
        (lambda: success_interval([0.5, 1.0]), TypeError),
        (lambda: rank_pvalue([1, 2], [3, 4], "smaller"), ValueError),
    ],
)
def test_bad_input_is_refused(call, error) -> None:
    with pytest.raises(error):
        call()
