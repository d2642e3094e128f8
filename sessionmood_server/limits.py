"""Rate limits: how many of something one key (an address, a publishable key...)
may do per period, decided in memory without I/O.

Each limit is a rate such as ``600/h``: up to 600 at once, then one more every
period/600 (a token bucket, kept as GCRA: one float per key, the time at which
the bucket would be full again). Memory stays bounded: keys whose bucket is
full again are forgotten, and past ``max_keys`` the fullest ones go first.

Limits are per process: N replicas of the server allow N times the rate. They
protect the service and its tenants from one source; exact, shared budgets
(the monthly quota) are kept in the database. ``StreamSlots`` counts what is
open now rather than what happened per period: live streams per tenant and
per address.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}
_UNITS["d"] = _UNITS["day"] = 86_400.0
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` per ``period_s`` seconds, with a burst of ``count``."""

    count: int
    period_s: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"600/h"``, ``"30/min"``, ``"10/5m"``; units s, m/min, h/hour, d/day."""
        m = _RATE_RE.match(text.lower())
        if m is None or m.group(3) not in _UNITS:
            raise ValueError(
                f"a rate looks like 600/h, 30/min or 10/5m (units s, min, h, d), not {text!r}"
            )
        count, per = int(m.group(1)), float(m.group(2) or 1) * _UNITS[m.group(3)]
        if count < 1 or per <= 0:
            raise ValueError(f"a rate needs a count of 1 or more, like 600/h, not {text!r}")
        return cls(count, per)

    def __str__(self) -> str:
        for unit, secs in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
            if self.period_s == secs:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.period_s:g}s"


class RateLimiter:
    """One rate, applied separately to each key."""

    def __init__(self, rate: Rate, max_keys: int = 100_000) -> None:
        self.rate = rate
        self._interval = rate.period_s / rate.count
        # A burst of ``count``: the bucket may run ahead of now by this much.
        self._tolerance = rate.period_s - self._interval
        self._tat: dict[Hashable, float] = {}
        self._max_keys = max_keys
        self._takes = 0

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until one more is allowed for ``key`` (0: allowed now)."""
        tat = self._tat.get(key)
        if tat is None:
            return 0.0
        return max(0.0, tat - self._tolerance - now)

    def take(self, key: Hashable, now: float) -> None:
        """Use one for ``key`` (call after ``wait`` said 0)."""
        tat = self._tat.get(key, now)
        self._tat[key] = max(tat, now) + self._interval
        self._takes += 1
        if len(self._tat) > self._max_keys or self._takes >= 4096:
            self._prune(now)

    def _prune(self, now: float) -> None:
        self._takes = 0
        # A key whose bucket is full again is the same as an unknown key.
        self._tat = {k: t for k, t in self._tat.items() if t > now}
        excess = len(self._tat) - self._max_keys
        if excess > 0:
            # Still too many (many sources at once): forget those closest to
            # full first; the busiest sources keep their debt.
            for key in heapq.nsmallest(
                excess + self._max_keys // 10, self._tat, key=self._tat.__getitem__
            ):
                del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)


def admit(buckets: Sequence[tuple[RateLimiter, Hashable]], now: float) -> float:
    """Take one from every (limiter, key) if all allow it; else take none and
    return the seconds until all would (rounded up, at least 1)."""
    wait = max((lim.wait(key, now) for lim, key in buckets), default=0.0)
    if wait > 0:
        return float(max(1, math.ceil(wait)))
    for lim, key in buckets:
        lim.take(key, now)
    return 0.0


@dataclass(frozen=True, slots=True)
class Admission:
    """May a batch open a new session? One from each of ``buckets``, taken
    only when all allow it (``admit``), at the time ``clock`` tells.

    Storage asks (``wait``) inside the batch's transaction, and only when the
    batch would open a new session: batches for open sessions never spend
    from these buckets. A refusal stores nothing and answers ``limited``
    with the seconds to wait in ``AppendResult.retry_after``.
    """

    buckets: Sequence[tuple[RateLimiter, Hashable]]
    clock: Callable[[], float]

    def wait(self) -> float:
        """0 if admitted (one taken from every bucket), else the seconds to wait."""
        return admit(self.buckets, self.clock())


def client_source(host: str | None) -> str:
    """The part of a client address that one source controls: the address for
    IPv4, the /64 for IPv6 (one subscriber usually holds a whole /64)."""
    if not host:
        return "-"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host  # a unix socket or a test client: use it as it is
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class StreamSlots:
    """Open streams per tenant and per client address, taken before the 200.

    ``take`` checks and counts in one synchronous step (nothing else runs on
    the loop in between), so simultaneous opens cannot all pass the check.
    """

    def __init__(self) -> None:
        self.by_tenant: dict[int, int] = {}
        self.by_source: dict[str, int] = {}

    def take(self, tenant: int, source: str, per_tenant: int, per_source: int) -> str | None:
        """None if taken, else which limit refused."""
        if per_tenant and self.by_tenant.get(tenant, 0) >= per_tenant:
            return f"at most {per_tenant} open /v1/stream/moods per tenant"
        if per_source and self.by_source.get(source, 0) >= per_source:
            return f"at most {per_source} open /v1/stream/moods per client address"
        self.by_tenant[tenant] = self.by_tenant.get(tenant, 0) + 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        return None

    def give_back(self, tenant: int, source: str) -> None:
        _decrement(self.by_tenant, tenant)
        _decrement(self.by_source, source)


def _decrement(counts: dict[Any, int], key: object) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]
