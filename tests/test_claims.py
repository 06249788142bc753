"""orthobook.claims: a verdict line when a claim holds, ClaimFailed with evidence when not."""

from __future__ import annotations

import pytest

from orthobook.claims import (
    ClaimFailed,
    Verdict,
    above,
    below,
    check,
    higher,
    lower,
    success_above,
    success_below,
    verdicts,
    within,
)

LOW, HIGH = [0.10, 0.12, 0.11, 0.09, 0.13], [0.50, 0.55, 0.45, 0.52, 0.48]
NOISY = [0.1, 0.9, 0.2, 0.8, 0.5]


def test_a_verdict_is_one_deterministic_line() -> None:
    verdict = lower("A is below B", LOW, HIGH)
    assert isinstance(verdict, Verdict) and repr(verdict) == "holds: A is below B"


@pytest.mark.parametrize(
    "call",
    [
        lambda: lower("a claim", HIGH, LOW),
        lambda: lower("a claim", NOISY, HIGH),  # intervals overlap: not an ordering
        lambda: higher("a claim", LOW, HIGH),
        lambda: within("a claim", LOW, HIGH, 0.1),
        lambda: below("a claim", HIGH, 0.5),
        lambda: above("a claim", LOW, 0.11),
        lambda: success_above("a claim", 4, 0.5, trials=5),
        lambda: success_below("a claim", 1, 0.5, trials=5),
        lambda: check("a claim", False, "why"),
    ],
)
def test_a_claim_that_does_not_hold_raises_with_its_evidence(call) -> None:
    with pytest.raises(ClaimFailed, match="does not hold: a claim"):
        call()


def test_claims_that_hold() -> None:
    assert higher("h", HIGH, LOW) == "holds: h"
    assert within("w", LOW, [0.11, 0.10, 0.12, 0.11, 0.10], 0.05) == "holds: w"
    assert below("b", LOW, 0.2) == "holds: b"
    assert above("a", HIGH, 0.4) == "holds: a"
    assert success_above("s", 20, 0.5, trials=20) == "holds: s"
    assert success_below("s", [False] * 10, 0.5) == "holds: s"


def test_the_failure_message_carries_the_numbers() -> None:
    with pytest.raises(ClaimFailed, match=r"mean 0\.5 \[.*\], bound 0\.2"):
        below("b", HIGH, 0.2)


def test_verdicts_joins_lines() -> None:
    assert verdicts(check("one", True, ""), check("two", True, "")) == "holds: one\nholds: two"
    with pytest.raises(TypeError):
        verdicts("holds: typed by hand")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: check("", True, ""), TypeError),
        (lambda: check("c", 1, ""), TypeError),
        (lambda: within("c", LOW, HIGH, 0.0), ValueError),
    ],
)
def test_bad_input_is_refused(call, error) -> None:
    with pytest.raises(error):
        call()
