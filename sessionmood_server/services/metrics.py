"""Metrics: what the server counts, kept cheap on the hot path.

Requests count into plain per-process dicts and ints (a dict increment and a
bisect per request); nothing calls ``prometheus_client`` until a scrape, when
``http.metrics`` turns a ``Snapshot`` into Prometheus families. A per-request
``Counter.labels(...).inc()`` and ``Histogram.observe()`` cost several times
more, and the POST/GET throughput is this project's first number.

Several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the variable
``prometheus_client``'s own multiprocess mode uses), each process writes its
snapshot to a file of its own there, every second and at each scrape; a scrape
sums the files, so whichever process answers it reports all of them. Counters
of processes that have exited stay in the sum (their last file stays); their
gauges drop out (written as zero at shutdown). Clear the directory when the
service is (re)deployed, as with ``prometheus_client``.

No label ever holds a key, a session id or a raw path: requests are labelled
by route template (``/v1/sessions/{session_id}/mood``), with ``other`` for
paths that match no route.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Seconds. Fine at the low end, where this server's requests are.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
UNMATCHED_ROUTE = "other"
DELIVERY_OUTCOMES = ("delivered", "failed", "gone")
# Exceptions from these modules are the database's (the storage layer does not wrap them).
_DATABASE_MODULES = ("sqlite3", "asyncpg")


@dataclass
class Snapshot:
    """One process's counts (or several processes' summed): plain data, JSON-able."""

    # (route template, method, status) -> requests
    requests: dict[tuple[str, str, int], int] = field(default_factory=dict)
    # route template -> per-bucket counts (len(LATENCY_BUCKETS) + 1, the last +Inf)
    latency_buckets: dict[str, list[int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)
    events: int = 0
    batches: int = 0
    mood_changes: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    database_errors: int = 0
    open_streams: int = 0  # a gauge: summed over live processes only

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [[*k, v] for k, v in self.requests.items()],
            "latency_buckets": self.latency_buckets,
            "latency_sum": self.latency_sum,
            "events": self.events,
            "batches": self.batches,
            "mood_changes": self.mood_changes,
            "deliveries": self.deliveries,
            "database_errors": self.database_errors,
            "open_streams": self.open_streams,
        }

    def add(self, other: dict[str, Any]) -> None:
        """Add a snapshot read back from ``to_json``."""
        for route, method, status, n in other["requests"]:
            key = (str(route), str(method), int(status))
            self.requests[key] = self.requests.get(key, 0) + int(n)
        for route, counts in other["latency_buckets"].items():
            mine = self.latency_buckets.setdefault(route, [0] * (len(LATENCY_BUCKETS) + 1))
            for i, n in enumerate(counts):
                mine[i] += int(n)
        for route, total in other["latency_sum"].items():
            self.latency_sum[route] = self.latency_sum.get(route, 0.0) + float(total)
        self.events += int(other["events"])
        self.batches += int(other["batches"])
        for name in ("mood_changes", "deliveries"):
            mine_counts: dict[str, int] = getattr(self, name)
            for label, n in other[name].items():
                mine_counts[label] = mine_counts.get(label, 0) + int(n)
        self.database_errors += int(other["database_errors"])
        self.open_streams += int(other["open_streams"])


class Metrics:
    """This process's counters. Every method is a few dict operations."""

    def __init__(self) -> None:
        self.current = Snapshot()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        s = self.current
        key = (route, method, status)
        s.requests[key] = s.requests.get(key, 0) + 1
        buckets = s.latency_buckets.get(route)
        if buckets is None:
            buckets = s.latency_buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        s.latency_sum[route] = s.latency_sum.get(route, 0.0) + seconds

    def batch(self, events: int, changed_to: str | None) -> None:
        """A stored batch of ``events``, which changed the mood to ``changed_to`` (or not)."""
        s = self.current
        s.batches += 1
        s.events += events
        if changed_to is not None:
            s.mood_changes[changed_to] = s.mood_changes.get(changed_to, 0) + 1

    def delivery(self, outcome: str) -> None:
        d = self.current.deliveries
        d[outcome] = d.get(outcome, 0) + 1

    def gauges(self, open_streams: int) -> None:
        """Set the gauges (read from their owners just before a snapshot)."""
        self.current.open_streams = open_streams

    def error(self, exc: BaseException) -> None:
        """Count ``exc`` if it came from the database driver."""
        if type(exc).__module__.split(".")[0] in _DATABASE_MODULES:
            self.current.database_errors += 1


# One per process: the HTTP layer, the delivery worker and the stream all count here.
METRICS = Metrics()


class SharedDir:
    """This process's file in a multiprocess directory, and the sum of all of them."""

    def __init__(self, directory: str | os.PathLike[str], metrics: Metrics = METRICS) -> None:
        self.dir = Path(directory)
        self.metrics = metrics
        # pid and a random part: a later process reusing the pid must not
        # overwrite (and so reset) an exited one's counters.
        self.path = self.dir / f"sessionmood_{os.getpid()}_{secrets.token_hex(4)}.json"

    def write(self, *, final: bool = False) -> None:
        data = self.metrics.current.to_json()
        if final:
            data["open_streams"] = 0  # an exited process has no open streams
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)  # readers never see half a file

    def collect(self) -> Snapshot:
        """Every process's counts, this one's as of now."""
        self.write()
        total = Snapshot()
        for path in sorted(self.dir.glob("sessionmood_*.json")):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                total.add(json.loads(path.read_text()))
        return total
