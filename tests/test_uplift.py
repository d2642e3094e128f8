"""The uplift arithmetic (sessionmood_server/uplift.py): reference values from
the literature, and the interval's coverage checked by simulation with known
truth."""

from __future__ import annotations

import random

import pytest

from sessionmood_server.uplift import compare, newcombe, sample_size, verdict, wilson


def test_wilson_matches_the_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table II: 81/263 -> 0.2553-0.3662.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))  # z^2 / (n + z^2)
    assert wilson(10, 10)[1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (0, 10, 0, 20, -0.1611, 0.2775),
    ],
)
def test_newcombe_matches_the_published_intervals(
    k1: int, n1: int, k2: int, n2: int, low: float, high: float
) -> None:
    d, lo, hi = newcombe(k1, n1, k2, n2)
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_the_verdict_follows_the_interval() -> None:
    assert verdict(0.01, 0.05) == "helps"
    assert verdict(-0.05, -0.01) == "hurts"
    assert verdict(-0.01, 0.05) == "unclear"
    assert verdict(None, None) == "unclear"


def test_sample_size_matches_the_textbook_formula() -> None:
    # 5 % vs 7 %, two-sided 5 %, 80 % power (Fleiss, without continuity
    # correction): (1.95996 sqrt(2 x .06 x .94) + 0.84162 sqrt(.07 x .93 + .05 x .95))^2
    # / .02^2 = (0.65827 + 0.28242)^2 / 0.0004 = 2212.2, so 2,213 per group.
    assert sample_size(0.05, 0.02) == 2213
    assert sample_size(0.05, 0.04) < sample_size(0.05, 0.02)
    # Every control session converted, or none: still a finite answer.
    assert 0 < sample_size(1.0, 0.02) < 10**6 and 0 < sample_size(0.0, 0.5) < 100
    assert compare(12, 12, 5, 5, 0.02).sessions_needed is not None


def test_sessions_needed_shrinks_as_data_comes_and_stops_once_decided() -> None:
    early = compare(100, 8, 100, 5, 0.02).sessions_needed
    later = compare(500, 40, 500, 25, 0.02).sessions_needed
    assert early is not None and later is not None and later < early
    decided = compare(20_000, 1600, 20_000, 1000, 0.02)
    assert decided.verdict == "helps" and decided.sessions_needed is None
    empty = compare(0, 0, 0, 0, 0.02)
    assert (empty.uplift, empty.verdict, empty.relative) == (None, "unclear", None)
    assert empty.sessions_needed == sample_size(0.05, 0.02)


@pytest.mark.parametrize(
    ("n1", "n2", "p1", "p2"),
    [(2000, 2000, 0.08, 0.05), (200, 200, 0.08, 0.05), (3600, 400, 0.05, 0.05), (60, 40, 0.3, 0.3)],
)
def test_the_interval_covers_the_true_difference_95_percent_of_the_time(
    n1: int, n2: int, p1: float, p2: float
) -> None:
    rng = random.Random(n1 * 31 + n2)
    runs = 2000
    covered = 0
    for _ in range(runs):
        k1 = sum(rng.random() < p1 for _ in range(n1)) if n1 <= 400 else _binomial(rng, n1, p1)
        k2 = sum(rng.random() < p2 for _ in range(n2)) if n2 <= 400 else _binomial(rng, n2, p2)
        _, lo, hi = newcombe(k1, n1, k2, n2)
        covered += lo <= p1 - p2 <= hi
    # 95 % nominal; Newcombe's method is slightly conservative. 2,000 runs: a
    # standard error of 0.5 points.
    assert 0.935 <= covered / runs <= 0.975, covered / runs


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(1 for _ in range(n) if rng.random() < p)
