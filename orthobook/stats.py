"""Results over seeds: means and success counts with their intervals, and comparisons.

A training run's outcome depends on its seed (and, through rounding, on the CPU), so the
book reports every comparison over S seeds: a mean with a 95 % interval, a success count
k/S with a Wilson interval, a difference of means with its Welch interval. The arithmetic
is scipy.stats'; this module fixes the choices once::

    >>> f"{mean_interval([0.10, 0.12, 0.11, 0.13, 0.09]):.3f}"
    '0.110 [0.090, 0.130]'
    >>> f"{success_interval(4, 5)}"
    '4/5 [0.38, 0.96]'
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "Successes",
    "difference_interval",
    "mean_interval",
    "rank_pvalue",
    "success_interval",
    "summary_table",
]


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval [low, high] from ``n`` observations.

    Formats as ``estimate [low, high]`` with the format spec applied to each number
    (``f"{interval:.3f}"``; ``.3g`` by default).
    """

    estimate: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    def __format__(self, spec: str) -> str:
        spec = spec or ".3g"
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"

    def __str__(self) -> str:
        return format(self)

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval."""
        return value < self.low or value > self.high


@dataclass(frozen=True)
class Successes(Interval):
    """A success rate k/n with its Wilson interval; formats as ``k/n [low, high]``."""

    k: int = 0

    def __format__(self, spec: str) -> str:
        spec = spec or ".2f"
        return f"{self.k}/{self.n} [{self.low:{spec}}, {self.high:{spec}}]"


def _sample(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"{name} needs at least 2 values (one per seed), got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds a non-finite value: {x.tolist()} (count a diverged seed as a failure)")
    return x


def _confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    return float(confidence)


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean of ``values`` (one per seed) with its Student-t confidence interval.

    Args:
        values: (S,) finite values, S ≥ 2.
        confidence: the interval's confidence level.

    Returns:
        The :class:`Interval`; when all values are equal it has zero width.

    Raises:
        ValueError: fewer than 2 values, a non-finite value, or confidence outside (0, 1).
    """
    x, level = _sample(values, "values"), _confidence(confidence)
    mean = float(x.mean())
    if np.ptp(x) == 0:
        return Interval(mean, mean, mean, x.size, level)
    with _exact_moments():
        ci = stats.ttest_1samp(x, 0.0).confidence_interval(level)
    return Interval(mean, float(ci.low), float(ci.high), x.size, level)


def difference_interval(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> Interval:
    """mean(a) − mean(b) with its Welch confidence interval (unequal variances).

    Args:
        a: (S_a,) values of one setting, one per seed.
        b: (S_b,) values of the other.
        confidence: the interval's confidence level.

    Returns:
        The :class:`Interval` of the difference; ``n`` is S_a + S_b.
    """
    x, y, level = _sample(a, "a"), _sample(b, "b"), _confidence(confidence)
    difference = float(x.mean() - y.mean())
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Interval(difference, difference, difference, x.size + y.size, level)
    with _exact_moments():
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(level)
    return Interval(difference, float(ci.low), float(ci.high), x.size + y.size, level)


@contextmanager
def _exact_moments() -> Iterator[None]:
    """Silence scipy's "Precision loss occurred in moment calculation" warning.

    scipy warns when a sample's deviations from its mean are below rounding relative to the
    mean: one setting whose seeds all end at the same value (five runs recalling exactly
    chance, say) beside one whose seeds differ. Its variance is then zero or rounding noise,
    which is the right variance, and Welch's interval is the other sample's alone.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred in moment calculation", RuntimeWarning)
        yield


def success_interval(
    successes: int | Sequence[bool] | np.ndarray, trials: int | None = None, confidence: float = 0.95
) -> Successes:
    """A success count k/n with its Wilson score interval.

    Args:
        successes: the count k (then ``trials`` is n), or (n,) booleans, one per seed.
        trials: n when ``successes`` is a count.
        confidence: the interval's confidence level.

    Raises:
        ValueError: a count without ``trials``, k outside [0, n], or n < 1.
    """
    level = _confidence(confidence)
    if isinstance(successes, (int, np.integer)) and not isinstance(successes, bool):
        if trials is None:
            raise ValueError("trials is required when successes is a count")
        k, n = int(successes), int(trials)
    else:
        if trials is not None:
            raise ValueError("trials must be None when successes is a sequence of booleans")
        flags = np.asarray(successes)
        if flags.dtype != bool:
            raise TypeError(f"successes must be a count or booleans, got dtype {flags.dtype}")
        k, n = int(flags.sum()), int(flags.size)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {k}/{n}")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return Successes(k / n, float(ci.low), float(ci.high), n, level, k)


def rank_pvalue(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, alternative: str = "two-sided"
) -> float:
    """The p-value of the Mann–Whitney U test of a against b (exact for small samples).

    Args:
        a: (S_a,) values of one setting.
        b: (S_b,) values of the other.
        alternative: ``"two-sided"``, ``"less"`` (a tends to be smaller) or ``"greater"``.
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    return float(stats.mannwhitneyu(_sample(a, "a"), _sample(b, "b"), alternative=alternative).pvalue)


def summary_table(groups: Mapping[str, Sequence[float] | np.ndarray], *, spec: str = ".3g", label: str = "setting") -> str:
    """A narrow text table: one row per setting with its mean, 95 % interval and seed count.

    Args:
        groups: ``setting → (S,) values``.
        spec: the format of each number.
        label: the heading of the first column.

    Example:
        >>> print(summary_table({"m = 0": [1.0, 1.2, 1.1], "m = 1": [2.0, 2.0, 2.0]}, spec=".2f"))
        setting  mean  95 % interval  seeds
        m = 0    1.10  [0.85, 1.35]       3
        m = 1    2.00  [2.00, 2.00]       3
    """
    rows = [(label, "mean", "95 % interval", "seeds")]
    for name, values in groups.items():
        iv = mean_interval(values)
        rows.append((str(name), f"{iv.estimate:{spec}}", f"[{iv.low:{spec}}, {iv.high:{spec}}]", str(iv.n)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3].rjust(widths[3])])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
