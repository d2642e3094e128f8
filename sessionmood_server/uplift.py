"""Uplift of an intervention: treated against held-out sessions, with an interval
honest at small counts. Pure arithmetic, no I/O.

The interval for a difference of two proportions is Newcombe's hybrid score
interval (Newcombe 1998, method 10): Wilson score intervals for each rate,
combined. Unlike the Wald interval it stays inside [-1, 1], is not degenerate
at 0 or 100 %, and keeps close to its nominal coverage with a few dozen
sessions per group (tests/test_uplift.py checks 95 % by simulation). The
verdict follows the interval: ``helps`` when it lies above 0, ``hurts`` when
below, ``unclear`` otherwise. ``sessions_needed`` is the classic
two-proportion sample size (two-sided 5 %, 80 % power) for a given absolute
effect at the observed control rate, less the sessions each group already has.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

Z95 = 1.959963984540054  # two-sided 95 %
Z80 = 0.8416212335729143  # 80 % power
METHOD = (
    "Newcombe hybrid score interval (Wilson per group), 95 %; verdict from the interval; "
    "sessions_needed: two-proportion sample size, 5 % two-sided, 80 % power"
)
# Without a control rate yet, sample sizes assume this one.
PRIOR_RATE = 0.05

Verdict = Literal["helps", "hurts", "unclear"]


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (n > 0)."""
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(difference, low, high) of p1 - p2, by Newcombe's hybrid score method."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def verdict(low: float | None, high: float | None) -> Verdict:
    if low is not None and low > 0:
        return "helps"
    if high is not None and high < 0:
        return "hurts"
    return "unclear"


def sample_size(control_rate: float, effect: float) -> int:
    """Sessions per group to detect ``control_rate + effect`` against
    ``control_rate`` (two-sided 5 %, 80 % power)."""
    # Rates at the edges are moved in just far enough for the effect to fit
    # (every control session converted: the effect is sized below 100 %).
    p2 = min(max(control_rate, 1e-4), 1 - 1e-4 - effect)
    p1 = p2 + effect
    bar = (p1 + p2) / 2
    root = Z95 * math.sqrt(2 * bar * (1 - bar)) + Z80 * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(root * root / ((p1 - p2) ** 2))


class Comparison(NamedTuple):
    """One treated-against-control comparison, everything the API reports."""

    treated_rate: float | None
    control_rate: float | None
    uplift: float | None
    low: float | None
    high: float | None
    relative: float | None
    verdict: Verdict
    sessions_needed: int | None  # more per group; None once the interval decides


def compare(
    treated: int, treated_conv: int, control: int, control_conv: int, effect: float
) -> Comparison:
    tr = treated_conv / treated if treated else None
    cr = control_conv / control if control else None
    d = low = high = None
    if treated and control:
        d, low, high = newcombe(treated_conv, treated, control_conv, control)
    v = verdict(low, high)
    relative = d / cr if d is not None and cr else None
    needed = None
    if v == "unclear":
        total = sample_size(cr if cr is not None else PRIOR_RATE, effect)
        needed = max(0, total - min(treated, control))
    return Comparison(tr, cr, d, low, high, relative, v, needed)
