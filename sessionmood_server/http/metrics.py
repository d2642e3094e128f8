"""``GET /metrics``: the counters of ``services.metrics`` in Prometheus' text format.

It needs the admin token (``Authorization: Bearer $SESSIONMOOD_ADMIN_TOKEN``)
and is a 404 on a server without one: request counts per route, mood changes
and webhook backlog are the business's volume, which a public endpoint would
show to anyone (competitors included). Prometheus sends the token with
``authorization: {credentials: ...}`` in its scrape config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from sessionmood_server.http.api import Api
from sessionmood_server.http.auth import is_admin
from sessionmood_server.http.errors import HTTPProblem, unauthorized
from sessionmood_server.http.responses import NO_STORE
from sessionmood_server.services.metrics import (
    DELIVERY_OUTCOMES,
    LATENCY_BUCKETS,
    METRICS,
    UNMATCHED_ROUTE,
    SharedDir,
    Snapshot,
)

log = logging.getLogger("sessionmood")

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# "{session_id:session_id}" (a route's convertor) -> "{session_id}"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")


def route_template(route: BaseRoute | None) -> str:
    """The label of a matched route: its path as documented, never the raw path."""
    if isinstance(route, Route):
        return _CONVERTOR.sub(r"{\1}", route.path)
    if isinstance(route, Mount):
        return route.path + "/{path}"
    return UNMATCHED_ROUTE


class _Families(Collector):
    """One scrape's families, built from a snapshot (and the backlog, read from storage)."""

    def __init__(self, snapshot: Snapshot, backlog: int | None) -> None:
        self.snapshot = snapshot
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        requests = CounterMetricFamily(
            "sessionmood_http_requests",
            "HTTP requests by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), n in sorted(s.requests.items()):
            requests.add_metric([route, method, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "sessionmood_http_request_duration_seconds",
            "Time to answer a request, by route template",
            labels=["route"],
        )
        for route, counts in sorted(s.latency_buckets.items()):
            cumulative, running = [], 0
            for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += n
                cumulative.append((bound, running))
            latency.add_metric([route], cumulative, s.latency_sum.get(route, 0.0))
        yield latency
        yield CounterMetricFamily(
            "sessionmood_events_ingested", "Events stored (in batches answered 200)", s.events
        )
        yield CounterMetricFamily("sessionmood_batches_ingested", "Event batches stored", s.batches)
        changes = CounterMetricFamily(
            "sessionmood_mood_changes", "Sessions' mood changes, by the new mood", labels=["mood"]
        )
        for mood, n in sorted(s.mood_changes.items()):
            changes.add_metric([mood], n)
        yield changes
        deliveries = CounterMetricFamily(
            "sessionmood_webhook_deliveries",
            "Webhook delivery attempts by outcome (gone: a 410 disabled the webhook)",
            labels=["outcome"],
        )
        for outcome in DELIVERY_OUTCOMES:
            deliveries.add_metric([outcome], s.deliveries.get(outcome, 0))
        yield deliveries
        if self.backlog is not None:
            yield GaugeMetricFamily(
                "sessionmood_webhook_backlog",
                "Webhook deliveries waiting to be sent or retried (all processes)",
                self.backlog,
            )
        yield GaugeMetricFamily(
            "sessionmood_open_streams", "Open /v1/stream/moods connections", s.open_streams
        )
        yield CounterMetricFamily(
            "sessionmood_database_errors",
            "Database errors (failed requests and background passes)",
            s.database_errors,
        )


class MetricsEndpoint:
    """``GET /metrics``, and the multiprocess file of this process."""

    def __init__(self, api: Api) -> None:
        self.api = api
        directory = api.settings.metrics_dir
        self.shared = SharedDir(directory) if directory else None
        self._task: asyncio.Task[None] | None = None

    def _refresh_gauges(self) -> None:
        METRICS.gauges(open_streams=self.api.feed.streams())

    async def serve(self, request: Request) -> Response:
        if not self.api.settings.admin_token:
            raise HTTPProblem(
                404,
                "Not Found",
                message="metrics need an admin token: set SESSIONMOOD_ADMIN_TOKEN",
            )
        if not is_admin(self.api.settings, request):
            raise unauthorized("metrics need Authorization: Bearer <SESSIONMOOD_ADMIN_TOKEN>")
        self._refresh_gauges()
        snapshot = self.shared.collect() if self.shared else METRICS.current
        backlog: int | None
        try:
            backlog = await self.api.storage.webhook_backlog()
        except Exception as exc:  # the rest of the scrape is still worth having
            METRICS.error(exc)
            log.exception("metrics: webhook backlog query failed")
            backlog = None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(snapshot, backlog))
        return Response(
            generate_latest(registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST, **NO_STORE},
        )

    # -- multiprocess: this process's file, written once a second ----------------

    def start(self) -> None:
        if self.shared is not None:
            self.shared.dir.mkdir(parents=True, exist_ok=True)
            self._task = asyncio.create_task(self._write_forever(), name="sessionmood-metrics")

    async def stop(self) -> None:
        if self._task is None or self.shared is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(OSError):
            self.shared.write(final=True)

    async def _write_forever(self) -> None:
        assert self.shared is not None
        while True:
            self._refresh_gauges()
            try:
                self.shared.write()
            except OSError:
                log.exception("metrics: cannot write %s", self.shared.path)
            await asyncio.sleep(1.0)


def metrics_routes(endpoint: MetricsEndpoint) -> list[BaseRoute]:
    return [Route("/metrics", endpoint.serve, methods=["GET"])]
