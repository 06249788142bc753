"""Claim checks: a sentence of the book that states an outcome, tested on the seeds' results.

Each check evaluates one claim on the statistics of :mod:`orthobook.stats` and either returns
a :class:`Verdict` — one deterministic line, ``holds: <claim>``, that a notebook displays and
nbval compares — or raises :class:`ClaimFailed` with the evidence, so that a run, papermill
and nbval fail the moment the claim stops being true::

    >>> lower("RIN's test MSE is below the baseline's", [0.01, 0.02, 0.015], [0.16, 0.17, 0.165])
    holds: RIN's test MSE is below the baseline's
    >>> below("the loss stays under 0.1", [0.3, 0.2, 0.25], 0.1)
    Traceback (most recent call last):
    ...
    orthobook.claims.ClaimFailed: does not hold: the loss stays under 0.1 (mean 0.25 [0.126, 0.374], bound 0.1)

A claim is chosen so that it holds for the method, not for one seed: an ordering whose
interval excludes zero, a bound with room to spare, a success count with its interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orthobook.stats import difference_interval, mean_interval, success_interval

__all__ = ["ClaimFailed", "Verdict", "above", "below", "check", "higher", "lower", "success_above", "success_below", "verdicts", "within"]

Values = Sequence[float] | np.ndarray


class ClaimFailed(AssertionError):
    """A claim of the book does not hold on the run's results."""


class Verdict(str):
    """The verdict line(s) of claims that hold; displays without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _claim(claim: object) -> str:
    if not isinstance(claim, str) or not claim.strip():
        raise TypeError(f"claim must be a non-empty sentence, got {claim!r}")
    return claim.strip()


def check(claim: str, holds: bool, evidence: str) -> Verdict:
    """The verdict on ``claim``: ``holds: <claim>``, or :class:`ClaimFailed` with ``evidence``.

    Args:
        claim: the sentence, as the book states it.
        holds: whether the results support it.
        evidence: the numbers behind the verdict (only shown when it fails).

    Raises:
        ClaimFailed: ``holds`` is false.
    """
    claim = _claim(claim)
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"holds must be a bool, got {type(holds).__name__}")
    if not holds:
        raise ClaimFailed(f"does not hold: {claim} ({evidence})")
    return Verdict(f"holds: {claim}")


def lower(claim: str, a: Values, b: Values, *, confidence: float = 0.95) -> Verdict:
    """mean(a) < mean(b): the Welch interval of mean(a) − mean(b) lies below zero.

    Args:
        claim: the sentence.
        a: (S_a,) values of the setting claimed lower, one per seed.
        b: (S_b,) values of the other setting.
        confidence: the interval's level.
    """
    iv = difference_interval(a, b, confidence)
    return check(claim, iv.high < 0, f"mean difference {iv}")


def higher(claim: str, a: Values, b: Values, *, confidence: float = 0.95) -> Verdict:
    """mean(a) > mean(b): the Welch interval of mean(a) − mean(b) lies above zero."""
    iv = difference_interval(a, b, confidence)
    return check(claim, iv.low > 0, f"mean difference {iv}")


def within(claim: str, a: Values, b: Values, tolerance: float, *, confidence: float = 0.95) -> Verdict:
    """|mean(a) − mean(b)| < tolerance: the whole Welch interval lies in (−tolerance, tolerance).

    This is how "no difference at this scale" is claimed: an equivalence margin chosen
    before looking, not a failed test of difference.
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    iv = difference_interval(a, b, confidence)
    return check(claim, -tolerance < iv.low and iv.high < tolerance, f"mean difference {iv}, tolerance {tolerance:g}")


def below(claim: str, values: Values, bound: float, *, confidence: float = 0.95) -> Verdict:
    """mean(values) < bound: the upper end of the mean's interval lies below ``bound``."""
    iv = mean_interval(values, confidence)
    return check(claim, iv.high < bound, f"mean {iv}, bound {bound:g}")


def above(claim: str, values: Values, bound: float, *, confidence: float = 0.95) -> Verdict:
    """mean(values) > bound: the lower end of the mean's interval lies above ``bound``."""
    iv = mean_interval(values, confidence)
    return check(claim, iv.low > bound, f"mean {iv}, bound {bound:g}")


def success_above(
    claim: str, successes: int | Sequence[bool], rate: float, *, trials: int | None = None, confidence: float = 0.95
) -> Verdict:
    """The success rate exceeds ``rate``: the Wilson interval of k/n lies above it."""
    iv = success_interval(successes, trials, confidence)
    return check(claim, iv.low > rate, f"successes {iv}, rate {rate:g}")


def success_below(
    claim: str, successes: int | Sequence[bool], rate: float, *, trials: int | None = None, confidence: float = 0.95
) -> Verdict:
    """The success rate is under ``rate``: the Wilson interval of k/n lies below it."""
    iv = success_interval(successes, trials, confidence)
    return check(claim, iv.high < rate, f"successes {iv}, rate {rate:g}")


def verdicts(*lines: Verdict) -> Verdict:
    """Several verdicts as one display, a line each (a cell's last expression).

    Example:
        >>> verdicts(check("one", True, ""), check("two", True, ""))
        holds: one
        holds: two
    """
    if not lines or not all(isinstance(line, Verdict) for line in lines):
        raise TypeError("verdicts takes one or more Verdict objects (the results of checks)")
    return Verdict("\n".join(lines))
